"""What the node's state machine shows and keeps: the status fields, the session checkpoint,
and closing a checkpoint left by a process that died (`power_loss`).

A mixin of `NodeMachine` (controller/session.py), apart from the badge and timer rules: these
read the machine's state but never decide anything. No I/O, like the rest of the machine.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from controller.actions import Action, EmitAction
from controller.session_record import rounded_s as _r
from protocol import AccessList, format_ts, parse_ts
from protocol.errors import ProtocolError

if TYPE_CHECKING:
    from controller.clock import Clock
    from controller.nodetime import NodeTime
    from controller.session_record import Session, _Signoff

log = logging.getLogger("controller.session")


class StatusAndRecovery:
    """Status and recovery; the attributes and helpers below are provided by `NodeMachine`."""

    if TYPE_CHECKING:
        session: Session | None
        clock: Clock
        time: NodeTime
        acl: AccessList | None
        relay: bool
        draining: bool
        last_cmd: str | None
        status_power_w: float | None
        actuator_confirms: bool
        actuator_ready: bool
        _signoff: _Signoff | None

        @property
        def locked(self) -> bool: ...
        def acl_problem(self) -> str | None: ...
        def now_wall(self) -> datetime: ...
        def raise_floor(self, when: datetime | None) -> None: ...
        def _emit(self, etype: str, data: dict[str, Any], *,
                  checkpoint: dict[str, Any] | None = None,
                  clear_checkpoint: bool = False) -> EmitAction: ...

    def recover(self, checkpoint: dict[str, Any]) -> list[Action]:
        """A session was open when the process died: close it as `power_loss` at its last known time."""
        try:
            started = parse_ts(checkpoint["started"])
            last = parse_ts(checkpoint["last_ts"])
            data = {
                "session": str(uuid.UUID(checkpoint["session"])),
                "uid": checkpoint["uid"], "member": checkpoint.get("member"),
                "started": format_ts(started), "ended": format_ts(last),
                "duration_s": _r(float(checkpoint.get("elapsed_s", 0.0))),
                "active_s": _r(float(checkpoint.get("active_s", 0.0))),
                "reason": "power_loss",
            }
        except (KeyError, TypeError, ValueError, ProtocolError) as exc:
            log.debug("unreadable session checkpoint %r", checkpoint)
            log.error("unreadable session checkpoint (%s): dropping it", exc)
            return []
        self.raise_floor(last)
        log.warning("session %s of member %s was open when the node stopped: ending it as "
                    "power_loss", data["session"], data["member"])
        return [self._emit("session.ended", data, clear_checkpoint=True)]

    @property
    def state(self) -> str:
        s = self.session
        if s is not None:
            if s.finishing is not None:
                return "finishing"
            if s.grace_until is not None:
                return "grace"
            return "in_use"
        if self._signoff is not None and self.clock.monotonic() < self._signoff.until:
            return "signoff"
        if self.locked or self.draining:
            return "locked"
        if self.acl_problem():
            return "no_acl"
        return "idle"

    def status_fields(self) -> dict[str, Any]:
        """The status fields the machine owns (the daemon adds node, online, software, ts)."""
        s = self.session
        return {
            "state": self.state,
            "relay": self.relay,
            "warning": bool(s is not None and s.warned),
            "session": None if s is None else {
                "id": s.id, "uid": s.uid, "member": s.member,
                "started": format_ts(s.started_wall)},
            "acl_version": self.acl.version if self.acl else None,
            "clock_ok": self.time.clock_ok(),
            "last_cmd": self.last_cmd,
            **({} if self.status_power_w is None else {"power_w": self.status_power_w}),
            **({"actuator_online": self.actuator_ready} if self.actuator_confirms else {}),
        }

    def checkpoint(self) -> dict[str, Any] | None:
        """What a restart needs to close the open session as `power_loss`."""
        s = self.session
        if s is None:
            return None
        now = self.clock.monotonic()
        return {"session": s.id, "uid": s.uid, "member": s.member,
                "started": format_ts(s.started_wall), "elapsed_s": _r(now - s.started_mono),
                "active_s": _r(s.active_s(now)), "last_ts": format_ts(self.now_wall())}
