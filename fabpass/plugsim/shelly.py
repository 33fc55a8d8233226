"""A simulated Shelly Gen2 plug (Plug S Gen3-like): MQTT RPC, NotifyStatus, `online`."""

from __future__ import annotations

import json
import time
from typing import Any

import paho.mqtt.client as mqtt

from fabpass.plugsim.base import SimPlug


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class ShellySim(SimPlug):
    def _will(self) -> tuple[str, bytes]:
        return f"{self.device}/online", b"false"

    def _announce(self, online: bool) -> None:
        self.publish(f"{self.device}/online", "true" if online else "false", retain=True)

    def _subscribe(self, client: mqtt.Client) -> None:
        client.subscribe(f"{self.device}/rpc", qos=1)

    def status(self) -> dict[str, Any]:
        st: dict[str, Any] = {
            "id": self.channel, "source": "init", "output": self.output,
            "apower": round(self.power_w, 1), "voltage": 231.2,
            "current": round(self.power_w / 231.2, 3),
            "aenergy": {"total": round(self.energy_wh, 3), "by_minute": [0.0, 0.0, 0.0],
                        "minute_ts": int(time.time())},
            "temperature": {"tC": 31.5, "tF": 88.7},
        }
        if self.timer_until is not None:
            st["timer_started_at"] = time.time()
            st["timer_duration"] = self.timer_duration
        return st

    def _on_command(self, topic: str, payload: bytes) -> None:
        try:
            frame = json.loads(payload)
            rpc_id, src, method = frame["id"], frame["src"], frame["method"]
            params = frame.get("params") or {}
        except (ValueError, KeyError, TypeError):
            return  # a real Shelly drops frames it cannot parse
        answer: dict[str, Any] = {"id": rpc_id, "src": self.device, "dst": src}
        if self.answer_errors:
            answer["error"] = {"code": -114, "message": "Resource unavailable!"}
        elif params.get("id") != self.channel:
            answer["error"] = {"code": -105,
                               "message": f"Argument 'id', value {params.get('id')} not found!"}
        elif method == "Switch.Set":
            on = params.get("on")
            if not isinstance(on, bool):
                answer["error"] = {"code": -103, "message": "Invalid argument 'on'!"}
            else:
                toggle = params.get("toggle_after")
                was = self.switch(on, "MQTT", float(toggle) if on and toggle else None)
                answer["result"] = {"was_on": was}
        elif method == "Switch.GetStatus":
            answer["result"] = self.status()
        else:
            answer["error"] = {"code": -114, "message": f"Method {method} failed: not found"}
        self.publish(f"{src}/rpc", _dumps(answer))

    def notify(self, change: dict[str, Any]) -> None:
        frame = {"src": self.device, "dst": f"{self.device}/events", "method": "NotifyStatus",
                 "params": {"ts": time.time(), f"switch:{self.channel}": {"id": self.channel,
                                                                        **change}}}
        self.publish(f"{self.device}/events/rpc", _dumps(frame))

    def _publish_state(self, source: str) -> None:
        change: dict[str, Any] = {"output": self.output, "source": source}
        if self.timer_until is not None:
            change.update(timer_started_at=time.time(), timer_duration=self.timer_duration)
        self.notify(change)

    def _publish_power(self) -> None:
        self.notify({"apower": round(self.power_w, 1),
                     "current": round(self.power_w / 231.2, 3)})

    def _telemetry(self) -> None:
        self.notify({"aenergy": {"total": round(self.energy_wh, 3),
                                 "by_minute": [0.0, 0.0, 0.0], "minute_ts": int(time.time())}})
