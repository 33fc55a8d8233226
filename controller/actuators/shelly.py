"""Shelly Gen2+ over MQTT RPC: frames to `{device}/rpc`, answers on `{src}/rpc`.

Payload shapes (Shelly's public API docs; recorded in docs/actuators.md):
- request `{"id": 7, "src": SRC, "method": "Switch.Set", "params": {"id": 0, "on": true,
  "toggle_after": 60}}`; `Switch.GetStatus` `{"id": 0}`;
- answer on `{SRC}/rpc`: `{"id": 7, "src": DEVICE, "dst": SRC, "result": {...}}` or
  `{..., "error": {"code": -103, "message": "..."}}`; `Switch.Set` answers
  `{"was_on": bool}`, `Switch.GetStatus` the switch status
  `{"id": 0, "output": bool, "apower": W, "aenergy": {"total": Wh, ...}, ...}`;
- `{device}/events/rpc`: `{"src": DEVICE, "method": "NotifyStatus", "params": {"ts": …,
  "switch:0": {only the changed fields}}}`, merged over the last full status;
- `{device}/online`: `true` / `false` (retained, its Last Will).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from typing import Any

from controller.actuators.codec import Outgoing, boolean, load_object, number, text
from controller.actuators.plug import Answer, Command, Observation, Online, PlugPayloadError, Seen

log = logging.getLogger(__name__)

MAX_PENDING = 64  # RPC ids remembered (older ones are forgotten, their answers ignored)


def _merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class ShellyCodec:
    def __init__(self, device: str, channel: int, src: str) -> None:
        self.device = device
        self.channel = channel
        self.src = src
        self.component = f"switch:{channel}"
        self.t_rpc = f"{device}/rpc"
        self.t_answer = f"{src}/rpc"
        self.t_events = f"{device}/events/rpc"
        self.t_online = f"{device}/online"
        self._next_id = 1
        self._pending: OrderedDict[int, str] = OrderedDict()
        self.status: dict[str, Any] = {}

    def subscriptions(self) -> list[str]:
        return [self.t_answer, self.t_events, self.t_online]

    def encode(self, cmd: Command) -> list[Outgoing]:
        if cmd.on is None:
            return [self._call("Switch.GetStatus", {"id": self.channel})]
        params: dict[str, Any] = {"id": self.channel, "on": cmd.on}
        if cmd.on and cmd.lease_s is not None:
            params["toggle_after"] = cmd.lease_s
        # Set answers only {"was_on"}: ask for the status right after to learn the new state.
        return [self._call("Switch.Set", params),
                self._call("Switch.GetStatus", {"id": self.channel})]

    def _call(self, method: str, params: dict[str, Any]) -> Outgoing:
        rpc_id = self._next_id
        self._next_id += 1
        self._pending[rpc_id] = method
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        frame = {"id": rpc_id, "src": self.src, "method": method, "params": params}
        return Outgoing(self.t_rpc, json.dumps(frame, separators=(",", ":")).encode())

    def decode(self, topic: str, payload: bytes) -> list[Observation]:
        if topic == self.t_online:
            word = text(payload, topic)
            if word not in ("true", "false"):
                raise PlugPayloadError(f"{topic}: expected true or false, got {word[:20]!r}")
            return [Online(word == "true")]
        if topic == self.t_answer:
            return self._answer(load_object(payload, topic))
        if topic == self.t_events:
            return self._event(load_object(payload, topic))
        raise PlugPayloadError(f"unexpected topic {topic}")

    def _answer(self, frame: dict[str, Any]) -> list[Observation]:
        rpc_id = frame.get("id")
        if isinstance(rpc_id, bool) or not isinstance(rpc_id, int) or rpc_id not in self._pending:
            raise PlugPayloadError(f"answer to RPC id {rpc_id!r} the node never sent (or forgot)")
        if frame.get("src") != self.device:
            raise PlugPayloadError(f"answer from {frame.get('src')!r}, expected {self.device!r}")
        method = self._pending.pop(rpc_id)
        if "error" in frame:
            error = frame["error"]
            detail = (f"{error.get('code')}: {error.get('message')}" if isinstance(error, dict)
                      else repr(error))
            return [Answer(False, f"{method}: {detail}"[:200])]
        result = frame.get("result")
        if not isinstance(result, dict):
            raise PlugPayloadError(f"{method} answer: 'result' must be an object")
        if method == "Switch.Set":
            boolean(result.get("was_on"), "Switch.Set result.was_on")
            return [Answer(True, method)]
        if result.get("id") != self.channel:
            raise PlugPayloadError(f"Switch.GetStatus answer for switch {result.get('id')!r}, "
                                   f"this node uses {self.channel}")
        seen = self._seen(result, "Switch.GetStatus result")  # validate before keeping it
        self.status = result
        return [Answer(True, method), seen]

    def _event(self, frame: dict[str, Any]) -> list[Observation]:
        if frame.get("method") != "NotifyStatus":
            return []  # NotifyEvent (button pushes, …) and others: not state
        params = frame.get("params")
        if not isinstance(params, dict):
            raise PlugPayloadError("NotifyStatus: 'params' must be an object")
        change = params.get(self.component)
        if change is None:
            others = [k for k in params if k.startswith("switch:")]
            if others:
                log.debug("NotifyStatus for %s ignored (this node uses %s)", others,
                          self.component)
            return []
        if not isinstance(change, dict):
            raise PlugPayloadError(f"NotifyStatus {self.component} must be an object")
        merged = _merge(self.status, change)
        seen = self._seen(merged, f"NotifyStatus {self.component}", partial=change)
        self.status = merged
        return [seen]

    def _seen(self, status: dict[str, Any], what: str,
              partial: dict[str, Any] | None = None) -> Seen:
        """The state in `status`; with `partial`, only the fields that notification carried."""
        src = status if partial is None else partial
        on = boolean(src["output"], f"{what}.output") if "output" in src else None
        power = number(src["apower"], f"{what}.apower") if "apower" in src else None
        energy = None
        if "aenergy" in src:
            aenergy = src["aenergy"]
            if not isinstance(aenergy, dict):
                raise PlugPayloadError(f"{what}.aenergy must be an object")
            if "total" in aenergy:
                energy = number(aenergy["total"], f"{what}.aenergy.total")
        if partial is None and "output" not in status:
            raise PlugPayloadError(f"{what}: no 'output'")
        return Seen(on=on, power_w=power, energy_wh=energy)
