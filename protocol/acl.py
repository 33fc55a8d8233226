"""The access list (contract section 2, with the section 6 additions) and its policy.

Additions of section 6, each strict when present and optional on the wire, so a list from an
older server still decodes and an older node ignores them:

- `policy.booking`: `off` (the default, also when absent) | `optional` | `required`;
- `bookings`: `[{"member": int, "start": ts, "end": ts}]` with `end > start`, every booking
  that overlaps the next 24 h (absent = none);
- a badge entry's `credit_ok` (bool; absent = true): false makes the node refuse `no_credit`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from protocol.errors import ProtocolError
from protocol.messages import ROLES, VERSION, _get, _load, _slug, _ts, _uid
from protocol.timefmt import format_ts
from protocol.wire import MAX_ACL_BYTES, check_tree, dumps

POLICY_KEYS = ("mode", "max_session_s", "warn_before_s", "grace_s", "idle_end_s", "power_off",
               "handover", "end_on_revoke", "on_stale", "booking", "booking_early_s",
               "booking_no_show_s", "booking_max_s", "booking_self")
_POLICY_CHOICES = {"mode": ("tap", "present"), "power_off": ("immediate", "when_idle"),
                   "on_stale": ("deny", "known_badges"),
                   "booking": ("off", "optional", "required")}
_POLICY_BOOLS = ("handover", "end_on_revoke", "booking_self")
_POLICY_NUMS = ("max_session_s", "warn_before_s", "grace_s", "idle_end_s", "booking_early_s",
                "booking_no_show_s", "booking_max_s")
BOOKING_MODES = _POLICY_CHOICES["booking"]
# Booking keys of the policy when absent (docs/bookings.md): how early one's own slot may be
# started, after how long an unstarted slot is released (a no-show), the longest booking the
# server accepts. `null` turns the first two off. Node and server read the same defaults.
BOOKING_DEFAULTS: dict[str, float] = {"booking_early_s": 300.0, "booking_no_show_s": 900.0,
                                      "booking_max_s": 12 * 3600.0}


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
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not math.isfinite(value) or value < 0):
                raise ProtocolError(f"{what}: {key!r} must be a non-negative number of seconds or null")
            out[key] = value
    check_tree(out, what)  # what is kept must encode again (e.g. no integer over 64 bits)
    return out


@dataclass
class BadgeEntry:
    uid: str
    member: int
    role: str = "user"
    until: datetime | None = None
    label: str | None = None
    credit_ok: bool = True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"uid": self.uid, "member": self.member, "role": self.role,
                               "until": format_ts(self.until) if self.until else None}
        if self.label is not None:
            out["label"] = self.label
        if not self.credit_ok:  # absent = true: lists without paid use stay as they were
            out["credit_ok"] = False
        return out


@dataclass
class Booking:
    """A slot on this node's machine: `member` may use it from `start` until `end`."""

    member: int
    start: datetime
    end: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"member": self.member, "start": format_ts(self.start),
                "end": format_ts(self.end)}

    @classmethod
    def from_dict(cls, obj: Any, what: str) -> Booking:
        if not isinstance(obj, dict):
            raise ProtocolError(f"{what}: must be an object")
        start, end = _ts(obj, "start", what), _ts(obj, "end", what)
        assert start is not None and end is not None  # required: _ts raised otherwise
        if end <= start:
            raise ProtocolError(f"{what}: field 'end' must be after 'start'")
        return cls(member=_get(obj, "member", int, what), start=start, end=end)


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
    bookings: list[Booking] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = {"v": VERSION, "version": self.version, "site": self.site, "node": self.node,
               "machine": self.machine, "issued": format_ts(self.issued),
               "valid_until": format_ts(self.valid_until), "locked": self.locked,
               "policy": self.policy, "badges": [b.to_dict() for b in self.badges]}
        if self.bookings:
            out["bookings"] = [b.to_dict() for b in self.bookings]
        return out

    def encode(self) -> bytes:
        return dumps(self.to_dict())

    def by_uid(self) -> dict[str, BadgeEntry]:
        return {b.uid: b for b in self.badges}

    @property
    def booking_mode(self) -> str:
        """`off` | `optional` | `required`; absent or null in the policy is `off`."""
        return self.policy.get("booking") or "off"

    @classmethod
    def decode(cls, payload: bytes | str | dict[str, Any]) -> AccessList:
        what = "acl"
        obj = _load(payload, what, max_bytes=MAX_ACL_BYTES)
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
            credit_ok = _get(b, "credit_ok", bool, bw, required=False)
            badges.append(BadgeEntry(
                uid=_uid(b, "uid", bw), member=_get(b, "member", int, bw), role=role,
                until=_ts(b, "until", bw, required=False, nullable=True),
                label=_get(b, "label", str, bw, required=False, nullable=True),
                credit_ok=credit_ok is not False,
            ))
        bookings_raw = _get(obj, "bookings", list, what, required=False) or []
        return cls(
            version=version, site=_slug(obj, "site", what), node=_slug(obj, "node", what),
            machine=_slug(obj, "machine", what), issued=_ts(obj, "issued", what),  # type: ignore[arg-type]
            valid_until=_ts(obj, "valid_until", what),  # type: ignore[arg-type]
            locked=_get(obj, "locked", bool, what),
            policy=check_policy(_get(obj, "policy", dict, what, required=False) or {}),
            badges=badges,
            bookings=[Booking.from_dict(b, f"{what}.bookings[{i}]")
                      for i, b in enumerate(bookings_raw)],
        )
