"""Shared by the three privacy operations: constants, replaced-UID test, JSON serialising."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import String, cast, or_
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

EXPORT_FORMAT = "fabpass.member-export.v1"
KEY_SETTING = "privacy.pseudonym_key"
EVENTS_WATERMARK = "privacy.events_pseudonymised_upto"
RETENTION_ENV = "FABPASS_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 365
ERASED_NAME = "(erased)"
UID_KEYS = ("uid", "trainer_uid", "trainee_uid")
BATCH = 1000
# Audit detail keys kept when an authorization entry about an erased member is scrubbed.
_AUDIT_KEEP = frozenset({"member_id", "machine_id", "group_id", "role", "expires_at", "via",
                         "granted_by_member_id", "erased"})

# Event data and node status fields that hold a badge UID.
_UID_LEN = 20


def _deleted(db: Session, stmt: Any) -> int:
    """Run a DELETE and return how many rows it removed."""
    return int(getattr(db.execute(stmt), "rowcount", 0) or 0)


def _is_replaced(uid: Any) -> bool:
    return isinstance(uid, str) and uid[:1] in ("E", "P") and len(uid) == _UID_LEN


# ---------------------------------------------------------------- serialising


def _plain(value: Any) -> Any:
    """JSON-ready copy: datetimes as RFC 3339, enums as values, bytes as text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if hasattr(value, "value") and not isinstance(value, str | int | float | bool):
        return value.value
    return value


def _row(obj: Any, exclude: Iterable[str] = ()) -> dict[str, Any]:
    skip = set(exclude)
    return {c.key: _plain(getattr(obj, c.key)) for c in obj.__table__.columns if c.key not in skip}


def _mentions(column: Any, needles: Iterable[str]) -> Any:
    """SQL: the JSON/text column contains one of the strings (refined in Python afterwards)."""
    conds = [cast(column, String).like(f"%{n}%") for n in needles]
    return or_(*conds) if conds else None


def _data_uids(data: Any) -> set[str]:
    if not isinstance(data, dict):
        return set()
    return {v for k in UID_KEYS if isinstance(v := data.get(k), str)}

def _replace_uids(data: Any, mapping: dict[str, str]) -> Any:
    """Copy of event data / node status with every UID in `mapping` replaced."""
    if isinstance(data, dict):
        return {k: (mapping.get(v, v) if k in UID_KEYS and isinstance(v, str)
                    else _replace_uids(v, mapping)) for k, v in data.items()}
    if isinstance(data, list):
        return [_replace_uids(v, mapping) for v in data]
    return data
