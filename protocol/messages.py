"""Protocol v1 messages (contract section 2) as typed objects with strict decoding.

Decoding is strict about what the contract fixes (`v` must be 1, required
fields present and of the right type, UIDs/slugs/times well formed) and
lenient about the rest: unknown keys are ignored, so the contract can grow.
Every failure is a `ProtocolError` whose message names the field.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from protocol.errors import ProtocolError
from protocol.timefmt import format_ts, parse_ts
from protocol.topics import check_slug
from protocol.uid import is_uid

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


def _load(payload: bytes | str | dict[str, Any], what: str) -> dict[str, Any]:
    if isinstance(payload, dict):
        obj = payload
    else:
        try:
            obj = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"{what}: payload is not UTF-8 JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what}: payload must be a JSON object, not {type(obj).__name__}")
    v = obj.get("v")
    if v != VERSION or isinstance(v, bool):
        raise ProtocolError(f"{what}: unsupported protocol version v={v!r} (expected 1)")
    return obj


_MISSING = object()


def _get(obj: dict[str, Any], key: str, typ: type | tuple[type, ...], what: str,
         *, required: bool = True, nullable: bool = False, default: Any = None) -> Any:
    value = obj.get(key, _MISSING)
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
    try:
        uuid.UUID(value)
    except ValueError:
        raise ProtocolError(f"{what}: field {key!r} is not a UUID: {value!r}") from None
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


def dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


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
            ts=_ts(obj, "ts", what),
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
}
EVENT_TYPES = tuple(_EVENT_FIELDS)


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

    @property
    def known(self) -> bool:
        return self.type in _EVENT_FIELDS

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


# ---------------------------------------------------------------- access list

POLICY_KEYS = ("mode", "max_session_s", "warn_before_s", "grace_s", "idle_end_s", "power_off",
               "handover", "end_on_revoke", "on_stale")
_POLICY_CHOICES = {"mode": ("tap", "present"), "power_off": ("immediate", "when_idle"),
                   "on_stale": ("deny", "known_badges")}
_POLICY_BOOLS = ("handover", "end_on_revoke")
_POLICY_NUMS = ("max_session_s", "warn_before_s", "grace_s", "idle_end_s")


def check_policy(obj: Any, what: str = "policy") -> dict[str, Any]:
    """Validate a policy object: known keys must be well typed; `null` means off."""
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what}: must be an object")
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key not in POLICY_KEYS:
            out[key] = value  # an addition we do not know: keep, ignore
            continue
        if value is None:
            out[key] = None
        elif key in _POLICY_CHOICES:
            if value not in _POLICY_CHOICES[key]:
                raise ProtocolError(f"{what}: {key!r} is {value!r}, expected one of "
                                    f"{', '.join(_POLICY_CHOICES[key])}")
            out[key] = value
        elif key in _POLICY_BOOLS:
            if not isinstance(value, bool):
                raise ProtocolError(f"{what}: {key!r} must be a boolean")
            out[key] = value
        else:
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ProtocolError(f"{what}: {key!r} must be a non-negative number of seconds or null")
            out[key] = value
    return out


@dataclass
class BadgeEntry:
    uid: str
    member: int
    role: str = "user"
    until: datetime | None = None
    label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"uid": self.uid, "member": self.member, "role": self.role,
                               "until": format_ts(self.until) if self.until else None}
        if self.label is not None:
            out["label"] = self.label
        return out


@dataclass
class AccessList:
    version: int
    site: str
    node: str
    machine: str
    issued: datetime
    valid_until: datetime
    locked: bool
    policy: dict[str, Any]
    badges: list[BadgeEntry]

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, "version": self.version, "site": self.site, "node": self.node,
                "machine": self.machine, "issued": format_ts(self.issued),
                "valid_until": format_ts(self.valid_until), "locked": self.locked,
                "policy": self.policy, "badges": [b.to_dict() for b in self.badges]}

    def encode(self) -> bytes:
        return dumps(self.to_dict())

    def by_uid(self) -> dict[str, BadgeEntry]:
        return {b.uid: b for b in self.badges}

    @classmethod
    def decode(cls, payload: bytes | str | dict[str, Any]) -> AccessList:
        what = "acl"
        obj = _load(payload, what)
        version = _get(obj, "version", int, what)
        if version < 0:
            raise ProtocolError(f"{what}: field 'version' must not be negative")
        badges_raw = _get(obj, "badges", list, what)
        badges: list[BadgeEntry] = []
        for i, b in enumerate(badges_raw):
            bw = f"{what}.badges[{i}]"
            if not isinstance(b, dict):
                raise ProtocolError(f"{bw}: must be an object")
            role = b.get("role", "user")
            if role not in ROLES:
                raise ProtocolError(f"{bw}: field 'role' is {role!r}, expected user or trainer")
            badges.append(BadgeEntry(
                uid=_uid(b, "uid", bw), member=_get(b, "member", int, bw), role=role,
                until=_ts(b, "until", bw, required=False, nullable=True),
                label=_get(b, "label", str, bw, required=False, nullable=True),
            ))
        return cls(
            version=version, site=_slug(obj, "site", what), node=_slug(obj, "node", what),
            machine=_slug(obj, "machine", what), issued=_ts(obj, "issued", what),  # type: ignore[arg-type]
            valid_until=_ts(obj, "valid_until", what),  # type: ignore[arg-type]
            locked=_get(obj, "locked", bool, what),
            policy=check_policy(_get(obj, "policy", dict, what, required=False) or {}),
            badges=badges,
        )


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
        obj = _load(payload, what)
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
