"""Protocol v1 messages (contract section 2) as typed objects with strict decoding.

Decoding is strict about what the contract fixes (`v` must be 1, required
fields present and of the right type, UIDs/slugs/times well formed) and
lenient about the rest: unknown keys are ignored, so the contract can grow.
Every failure is a `ProtocolError` whose message names the field.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from protocol.errors import ProtocolError
from protocol.fastpath import EventFastPath
from protocol.timefmt import format_ts, parse_ts
from protocol.topics import check_slug
from protocol.uid import is_uid
from protocol.wire import MAX_ACK_BYTES, MAX_EVENT_BYTES, dumps, load_object, peek_id

__all__ = ["dumps", "peek_id"]  # re-exported: the wire helpers every message uses

VERSION = 1

STATES = ("idle", "in_use", "finishing", "grace", "signoff", "locked", "no_acl")
BUSY_STATES = ("in_use", "finishing", "grace", "signoff")  # a session runs on the machine
DENY_REASONS = (
    "unknown_badge",
    "badge_lost",
    "not_authorized",
    "expired",
    "machine_locked",
    "in_use",
    "acl_stale",
    "no_acl",
    # contract section 6 (bookings, paid use, smart-plug actuators)
    "booked",
    "no_booking",
    "no_credit",
    "actuator_failed",
    "actuator_offline",
)
END_REASONS = (
    "badge_out",
    "badge_removed",
    "timeout",
    "idle",
    "handover",
    "remote_stop",
    "revoked",
    "shutdown",
    "power_loss",
)
COMMANDS = ("stop", "lock", "unlock", "identify", "resync")
ROLES = ("user", "trainer")

# ---------------------------------------------------------------- helpers


def _load(payload: bytes | str | dict[str, Any], what: str, *,
          max_bytes: int = MAX_EVENT_BYTES) -> dict[str, Any]:
    obj = load_object(payload, what, max_bytes=max_bytes)  # bounded: see protocol/wire.py
    v = obj.get("v")
    if v != VERSION or isinstance(v, bool):
        raise ProtocolError(f"{what}: unsupported protocol version v={v!r} (expected 1)")
    return obj


_MISSING = object()
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def _get(obj: dict[str, Any], key: str, typ: type | tuple[type, ...], what: str,
         *, required: bool = True, nullable: bool = False, default: Any = None) -> Any:
    value = obj.get(key, _MISSING)
    if type(value) is typ and typ is not int:  # the usual case first (never a bool for int)
        return value
    if value is _MISSING:
        if required:
            raise ProtocolError(f"{what}: missing field {key!r}")
        return default
    if value is None:
        if nullable or not required:
            return None
        raise ProtocolError(f"{what}: field {key!r} must not be null")
    types = typ if isinstance(typ, tuple) else (typ,)
    if isinstance(value, bool) and bool not in types:
        raise ProtocolError(f"{what}: field {key!r} must be {_names(types)}, not a boolean")
    if isinstance(value, int) and value.bit_length() > 64:  # JSON allows any size; we do not
        raise ProtocolError(f"{what}: field {key!r} is out of range (more than 64 bits)")
    if float in types and int not in types and isinstance(value, int):
        value = float(value)
    if not isinstance(value, types):
        raise ProtocolError(
            f"{what}: field {key!r} must be {_names(types)}, not {type(value).__name__}"
        )
    return value


def _names(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "a boolean",
             dict: "an object", list: "a list"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _num(obj: dict[str, Any], key: str, what: str, *, required: bool = True) -> float | None:
    value = _get(obj, key, (int, float), what, required=required)
    if value is not None and not math.isfinite(value):
        raise ProtocolError(f"{what}: field {key!r} must be a finite number")
    if value is not None and value < 0:
        raise ProtocolError(f"{what}: field {key!r} must not be negative")
    return None if value is None else float(value)


def _ts(obj: dict[str, Any], key: str, what: str, *, required: bool = True,
        nullable: bool = False) -> datetime | None:
    value = _get(obj, key, str, what, required=required, nullable=nullable)
    if value is None:
        return None
    try:
        return parse_ts(value)
    except ProtocolError as exc:
        raise ProtocolError(f"{what}: field {key!r}: {exc}") from None


def _uid(obj: dict[str, Any], key: str, what: str) -> str:
    value = _get(obj, key, str, what)
    if not is_uid(value):
        raise ProtocolError(f"{what}: field {key!r} is not a badge UID: {value!r}")
    return str(value)


def _uuid(obj: dict[str, Any], key: str, what: str, *, required: bool = True) -> str | None:
    value = _get(obj, key, str, what, required=required)
    if value is None:
        return None
    if _CANONICAL_UUID.match(value):  # what fabpass writes; uuid.UUID for other spellings
        return value
    try:
        uuid.UUID(value)
    except ValueError:
        raise ProtocolError(f"{what}: field {key!r} is not a UUID: {value[:60]!r}") from None
    return str(value)


def _slug(obj: dict[str, Any], key: str, what: str) -> str:
    value = _get(obj, key, str, what)
    try:
        return check_slug(value, key)
    except ProtocolError as exc:
        raise ProtocolError(f"{what}: {exc}") from None


def _choice(obj: dict[str, Any], key: str, choices: tuple[str, ...], what: str) -> str:
    value = _get(obj, key, str, what)
    if value not in choices:
        raise ProtocolError(f"{what}: field {key!r} is {value!r}, expected one of {', '.join(choices)}")
    return str(value)


def new_id() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------- status


@dataclass
class SessionInfo:
    id: str
    uid: str
    member: int | None
    started: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "uid": self.uid, "member": self.member,
                "started": format_ts(self.started)}

    @classmethod
    def from_dict(cls, obj: Any, what: str = "status.session") -> SessionInfo:
        if not isinstance(obj, dict):
            raise ProtocolError(f"{what}: must be an object or null")
        return cls(id=str(_uuid(obj, "id", what)), uid=_uid(obj, "uid", what),
                   member=_get(obj, "member", int, what, nullable=True),
                   started=_ts(obj, "started", what))  # type: ignore[arg-type]


@dataclass
class Status:
    """A node's retained status. `online=False` with nothing else is the Last Will."""

    node: str
    online: bool
    state: str | None = None
    relay: bool | None = None
    warning: bool | None = None
    session: SessionInfo | None = None
    acl_version: int | None = None
    clock_ok: bool | None = None
    last_cmd: str | None = None
    software: str | None = None
    ts: datetime | None = None
    backlog: int | None = None  # optional (section 6): events in the node's outbox not yet acked
    extra: dict[str, Any] = field(default_factory=dict)  # additions we emit (not required)

    def to_dict(self) -> dict[str, Any]:
        if not self.online and self.state is None:
            return {"v": VERSION, "node": self.node, "online": False}
        out: dict[str, Any] = {
            "v": VERSION, "node": self.node, "online": self.online, "state": self.state,
            "relay": bool(self.relay), "warning": bool(self.warning),
            "session": self.session.to_dict() if self.session else None,
            "acl_version": self.acl_version, "clock_ok": bool(self.clock_ok),
            "last_cmd": self.last_cmd, "software": self.software,
            "ts": format_ts(self.ts) if self.ts else None,
        }
        if self.backlog is not None:
            out["backlog"] = self.backlog
        out.update(self.extra)
        return out

    def encode(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def last_will(cls, node: str) -> Status:
        return cls(node=node, online=False)

    @classmethod
    def decode(cls, payload: bytes | str | dict[str, Any]) -> Status:
        what = "status"
        obj = _load(payload, what)
        node = _slug(obj, "node", what)
        online = _get(obj, "online", bool, what)
        if not online:
            # The Last Will carries only v/node/online; a graceful offline status may carry more.
            return cls(node=node, online=False, state=obj.get("state") if isinstance(obj.get("state"), str) else None)
        session_obj = obj.get("session")
        backlog = _get(obj, "backlog", int, what, required=False)
        if backlog is not None and backlog < 0:
            raise ProtocolError(f"{what}: field 'backlog' must not be negative")
        return cls(
            node=node, online=True,
            state=_choice(obj, "state", STATES, what),
            relay=_get(obj, "relay", bool, what),
            warning=_get(obj, "warning", bool, what),
            session=None if session_obj is None else SessionInfo.from_dict(session_obj),
            acl_version=_get(obj, "acl_version", int, what, nullable=True),
            clock_ok=_get(obj, "clock_ok", bool, what),
            last_cmd=_get(obj, "last_cmd", str, what, nullable=True),
            software=_get(obj, "software", str, what),
            ts=_ts(obj, "ts", what), backlog=backlog,
        )


# ---------------------------------------------------------------- events

# Required data fields per known event type: name -> kind
# kinds: uid, uuid, int?, num, ts, str, reason-lists
_EVENT_FIELDS: dict[str, dict[str, str]] = {
    "badge.denied": {"uid": "uid", "reason": "deny_reason"},
    "session.started": {"session": "uuid", "uid": "uid", "member": "member"},
    "session.heartbeat": {"session": "uuid", "uid": "uid", "member": "member",
                          "elapsed_s": "num", "active_s": "num"},
    "session.ended": {"session": "uuid", "uid": "uid", "member": "member", "started": "ts",
                      "ended": "ts", "duration_s": "num", "active_s": "num",
                      "reason": "end_reason"},
    "training.signed": {"trainer_uid": "uid", "trainee_uid": "uid"},
    # a smart plug found on with no session (contract 6, "Actuators"; docs/actuators.md)
    "actuator.unexpected_on": {"action": "unexpected_action"},
}
UNEXPECTED_ACTIONS = ("switched_off", "off_when_idle")
EVENT_TYPES = tuple(_EVENT_FIELDS)
# Optional data fields (contract section 6): checked only when present.
_OPTIONAL_NUM: dict[str, tuple[str, ...]] = {
    "session.heartbeat": ("power_w",),
    "session.ended": ("energy_wh",),
    "actuator.unexpected_on": ("power_w",),
}


def _check_data(etype: str, data: dict[str, Any]) -> None:
    what = f"event {etype} data"
    for key, kind in _EVENT_FIELDS.get(etype, {}).items():
        if kind == "uid":
            _uid(data, key, what)
        elif kind == "uuid":
            _uuid(data, key, what)
        elif kind == "member":
            _get(data, key, int, what, nullable=True)
        elif kind == "num":
            _num(data, key, what)
        elif kind == "ts":
            _ts(data, key, what)
        elif kind == "deny_reason":
            _choice(data, key, DENY_REASONS, what)
        elif kind == "end_reason":
            _choice(data, key, END_REASONS, what)
        elif kind == "unexpected_action":
            _choice(data, key, UNEXPECTED_ACTIONS, what)
    for key in _OPTIONAL_NUM.get(etype, ()):
        if data.get(key) is not None:
            _num(data, key, what)
    _check_rules(etype, data, what)


# (the larger duration, the part of it that may not exceed it) per event type
_DURATION_PAIRS = {"session.heartbeat": ("elapsed_s", "active_s"),
                   "session.ended": ("duration_s", "active_s")}


def _check_rules(etype: str, data: dict[str, Any], what: str) -> None:
    """Rules across fields, and fields required only in some cases (contract section 6).

    Plausibility that needs no clock lives here, so nodes and the server share it: durations
    are finite and >= 0 (checked per field) and the active time fits in the session. The rules
    that need the receive time (maximum session length, `ended - started` + skew allowance,
    untrusted wall clocks) are the server's: it reads the times with `Event.time`.
    """
    pair = _DURATION_PAIRS.get(etype)
    if pair is not None:
        total, part = (float(data[k]) for k in pair)
        if part > total:
            raise ProtocolError(f"{what}: field {pair[1]!r} ({part:g}) must not exceed "
                                f"{pair[0]!r} ({total:g})")
    if etype == "actuator.unexpected_on":
        _get(data, "device", str, what, required=False)
    if etype == "badge.denied":
        # `booked` names the end of the other member's slot; strict whenever it is present.
        _ts(data, "until", what, required=data.get("reason") == "booked")


@dataclass
class Event:
    """One event envelope. `data` is validated for known types and kept raw for others."""

    id: str
    node: str
    boot: str
    seq: int
    ts: datetime
    type: str
    data: dict[str, Any]
    # `data` as JSON text, when the fast path read it (what a store can keep as it is: valid
    # JSON, finite numbers, no NUL); None otherwise. Not part of the event's value.
    data_json: str | None = field(default=None, compare=False, repr=False)

    @property
    def known(self) -> bool:
        return self.type in _EVENT_FIELDS

    def time(self, key: str) -> datetime | None:
        """`data[key]` as an aware UTC datetime (`started`, `ended`, `until`), None if absent.

        Known types were validated at decode, so this does not raise for their time fields."""
        value = self.data.get(key)
        return None if value is None else parse_ts(value)

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, "id": self.id, "node": self.node, "boot": self.boot,
                "seq": self.seq, "ts": format_ts(self.ts), "type": self.type, "data": self.data}

    def encode(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def create(cls, *, node: str, boot: str, seq: int, ts: datetime, type: str,
               data: dict[str, Any], id: str | None = None) -> Event:
        """Build and validate a new event (raises ProtocolError on bad data)."""
        event = cls(id=id or new_id(), node=node, boot=boot, seq=seq, ts=ts, type=type, data=data)
        _check_data(type, data)
        return event

    @classmethod
    def decode(cls, payload: bytes | str | dict[str, Any]) -> Event:
        fast = _FAST.decode(payload)  # the usual event, validated by msgspec (protocol/fastpath.py)
        return cls(*fast) if fast is not None else cls.decode_reference(payload)

    @classmethod
    def decode_reference(cls, payload: bytes | str | dict[str, Any]) -> Event:
        """The decoder that defines what is valid and says why not; `decode` agrees with it."""
        what = "event"
        obj = _load(payload, what)
        etype = _get(obj, "type", str, what)
        if not etype or len(etype) > 64:
            raise ProtocolError(f"{what}: field 'type' must be a non-empty string of at most 64 characters")
        data = _get(obj, "data", dict, what)
        event = cls(
            id=str(_uuid(obj, "id", what)), node=_slug(obj, "node", what),
            boot=str(_uuid(obj, "boot", what)),
            seq=_get(obj, "seq", int, what), ts=_ts(obj, "ts", what),  # type: ignore[arg-type]
            type=etype, data=data,
        )
        if event.seq < 0:
            raise ProtocolError(f"{what}: field 'seq' must not be negative")
        _check_data(etype, data)
        return event


_FAST = EventFastPath(_EVENT_FIELDS, {"deny_reason": DENY_REASONS, "end_reason": END_REASONS},
                      _check_rules)


# ---------------------------------------------------------------- ack and cmd


@dataclass
class Ack:
    ids: list[str]
    rejected: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, "ids": self.ids, "rejected": self.rejected}

    def encode(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def decode(cls, payload: bytes | str | dict[str, Any]) -> Ack:
        what = "ack"
        obj = _load(payload, what, max_bytes=MAX_ACK_BYTES)
        ids = _get(obj, "ids", list, what)
        rejected = _get(obj, "rejected", list, what, required=False) or []
        for key, seq in (("ids", ids), ("rejected", rejected)):
            if not all(isinstance(x, str) for x in seq):
                raise ProtocolError(f"{what}: field {key!r} must be a list of strings")
        return cls(ids=list(ids), rejected=list(rejected))


@dataclass
class Command:
    id: str
    ts: datetime
    cmd: str

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, "id": self.id, "ts": format_ts(self.ts), "cmd": self.cmd}

    def encode(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def create(cls, cmd: str, ts: datetime) -> Command:
        if cmd not in COMMANDS:
            raise ProtocolError(f"cmd: unknown command {cmd!r}")
        return cls(id=new_id(), ts=ts, cmd=cmd)

    @classmethod
    def decode(cls, payload: bytes | str | dict[str, Any]) -> Command:
        what = "cmd"
        obj = _load(payload, what)
        return cls(id=str(_uuid(obj, "id", what)), ts=_ts(obj, "ts", what),  # type: ignore[arg-type]
                   cmd=_choice(obj, "cmd", COMMANDS, what))


_MOVED_TO_ACL = frozenset({"AccessList", "BadgeEntry", "POLICY_KEYS", "check_policy"})


def __getattr__(name: str) -> Any:
    """The access list moved to protocol/acl.py; `from protocol.messages import …` still works."""
    if name in _MOVED_TO_ACL:
        from protocol import acl

        return getattr(acl, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
