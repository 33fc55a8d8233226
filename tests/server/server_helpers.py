"""Builders for node messages (the same encoders the node uses)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from protocol import Event, Status, format_ts
from server.messaging.ingest import Incoming

_seq = itertools.count(1)
BOOT = str(uuid.uuid4())
T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)


def event(etype: str, data: dict[str, Any], *, node: str = "laser-1",
          ts: datetime | None = None, id: str | None = None) -> Event:
    return Event(id=id or str(uuid.uuid4()), node=node, boot=BOOT, seq=next(_seq),
                 ts=ts or datetime.now(UTC), type=etype, data=data)


def started(sid: str, uid: str = "04A1B2C3", member: int | None = None, **kw: Any) -> Event:
    return event("session.started", {"session": sid, "uid": uid, "member": member}, **kw)


def heartbeat(sid: str, elapsed: float, active: float, uid: str = "04A1B2C3",
              member: int | None = None, **kw: Any) -> Event:
    return event("session.heartbeat", {"session": sid, "uid": uid, "member": member,
                                       "elapsed_s": elapsed, "active_s": active}, **kw)


def ended(sid: str, start: datetime, duration: float, active: float, reason: str = "badge_out",
          uid: str = "04A1B2C3", member: int | None = None, **kw: Any) -> Event:
    return event("session.ended", {
        "session": sid, "uid": uid, "member": member, "started": format_ts(start),
        "ended": format_ts(start + timedelta(seconds=duration)), "duration_s": duration,
        "active_s": active, "reason": reason}, ts=start + timedelta(seconds=duration), **kw)


def status(node: str = "laser-1", session: dict[str, Any] | None = None, acl_version: int | None = 1,
           ts: datetime | None = None, state: str | None = None) -> bytes:
    st = Status(node=node, online=True, state=state or ("in_use" if session else "idle"),
                relay=bool(session), warning=False, session=None, acl_version=acl_version,
                clock_ok=True, last_cmd=None, software="0.1.0", ts=ts or datetime.now(UTC))
    d = st.to_dict()
    d["session"] = session
    import json
    return json.dumps(d).encode()


def incoming(topic: str, payload: bytes, mid: int = 0) -> Incoming:
    return Incoming(topic=topic, payload=payload, mid=mid, qos=1, received_at=datetime.now(UTC))


def ev_in(ev: Event, site: str = "lab", node: str | None = None) -> Incoming:
    return incoming(f"fabpass/v1/{site}/{node or ev.node}/event", ev.encode())
