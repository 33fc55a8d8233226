"""Pseudonymisation (storage limitation): old raw badge UIDs become keyed pseudonyms."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from server.errors import Invalid
from server.models import (
    DeadLetter,
    Event,
    Refusal,
    Setting,
    TrainingSignoff,
    UnknownBadge,
    UsageSession,
)
from server.services.audit import audit
from server.services.common import now_utc
from server.services.privacy.common import (
    _UID_LEN,
    BATCH,
    DEFAULT_RETENTION_DAYS,
    EVENTS_WATERMARK,
    KEY_SETTING,
    RETENTION_ENV,
    _data_uids,
    _deleted,
    _is_replaced,
    _plain,
    _replace_uids,
)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- pseudonymisation


@dataclass
class PseudonymiseResult:
    cutoff: datetime
    sessions: int = 0
    events: int = 0
    signoffs: int = 0
    dead_letters: int = 0
    unknown_badges: int = 0
    refusals: int = 0

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = asdict(self)
        d["cutoff"] = _plain(self.cutoff)
        return d


def _setting(db: Session, key: str) -> str | None:
    row = db.get(Setting, key)
    return row.value if row is not None else None


def _set_setting(db: Session, key: str, value: str) -> None:
    row = db.get(Setting, key)
    if row is None:
        db.add(Setting(key=key, value=value))
    else:
        row.value = value


def pseudonym_key(db: Session) -> bytes:
    """The HMAC key of pseudonyms, generated on first use and kept in the settings table."""
    value = _setting(db, KEY_SETTING)
    if value is None:
        value = secrets.token_hex(32)
        _set_setting(db, KEY_SETTING, value)
        db.flush()
    return bytes.fromhex(value)


def pseudonym(key: bytes, uid: str) -> str:
    """Stable, keyed replacement for a UID: same card → same pseudonym, no way back without key."""
    if _is_replaced(uid):
        return uid
    digest = hmac.new(key, uid.encode("utf-8"), hashlib.sha256).hexdigest()
    return "P" + digest[: _UID_LEN - 1].upper()


def retention_days_from_env(env: dict[str, str] | None = None) -> int:
    """`FABPASS_RETENTION_DAYS` (default 365): how long raw session detail stays as recorded."""
    raw = (os.environ if env is None else env).get(RETENTION_ENV, "")
    if not raw.strip():
        return DEFAULT_RETENTION_DAYS
    try:
        days = int(raw)
    except ValueError as exc:
        raise Invalid(f"{RETENTION_ENV} must be a whole number of days",
                      {RETENTION_ENV: "whole number of days"}) from exc
    if days < 1:
        raise Invalid(f"{RETENTION_ENV} must be at least 1", {RETENTION_ENV: "at least 1"})
    return days


def pseudonymise(db: Session, older_than_days: int, *, now: datetime | None = None,
                 actor: str = "privacy") -> PseudonymiseResult:
    """Replace badge UIDs in raw detail older than the retention with keyed pseudonyms.

    Sessions that ended (or, if still open, started) before the cutoff, events received
    before it and trainer sign-offs created before it are pseudonymised; dead letters and
    never-enrolled badges older than the cutoff are deleted. Idempotent; works in batches
    and commits after each one, so a large backlog does not hold one long transaction.
    """
    if older_than_days < 1:
        raise Invalid("older_than_days must be at least 1", {"older_than_days": "at least 1"})
    cutoff = (now or now_utc()) - timedelta(days=older_than_days)
    key = pseudonym_key(db)
    result = PseudonymiseResult(cutoff=cutoff)

    while True:
        rows = list(db.scalars(select(UsageSession).where(
            UsageSession.pseudonymised_at.is_(None),
            or_(UsageSession.ended_at < cutoff,
                UsageSession.ended_at.is_(None) & (UsageSession.started_at < cutoff)))
            .order_by(UsageSession.id).limit(BATCH)))
        if not rows:
            break
        stamp = now_utc()
        for sess in rows:
            sess.badge_uid = pseudonym(key, sess.badge_uid)
            sess.pseudonymised_at = stamp
        result.sessions += len(rows)
        db.commit()

    upto = int(_setting(db, EVENTS_WATERMARK) or 0)
    while True:
        events = list(db.scalars(select(Event).where(Event.id > upto,
                                                     Event.received_at < cutoff)
                                 .order_by(Event.id).limit(BATCH)))
        if not events:
            break
        for ev in events:
            uids = {u for u in _data_uids(ev.data) if not _is_replaced(u)}
            if uids:
                ev.data = _replace_uids(ev.data, {u: pseudonym(key, u) for u in uids})
                result.events += 1
        upto = events[-1].id
        _set_setting(db, EVENTS_WATERMARK, str(upto))
        db.commit()

    for so in db.scalars(select(TrainingSignoff).where(TrainingSignoff.created_at < cutoff)):
        if not (_is_replaced(so.trainer_uid) and _is_replaced(so.trainee_uid)):
            so.trainer_uid = pseudonym(key, so.trainer_uid)
            so.trainee_uid = pseudonym(key, so.trainee_uid)
            result.signoffs += 1
    for refusal in db.scalars(select(Refusal).where(Refusal.at < cutoff)):
        if not _is_replaced(refusal.uid):
            refusal.uid = pseudonym(key, refusal.uid)
            result.refusals += 1
    result.dead_letters = _deleted(db, delete(DeadLetter).where(DeadLetter.received_at < cutoff))
    result.unknown_badges = _deleted(
        db, delete(UnknownBadge).where(UnknownBadge.last_seen < cutoff))
    if any(v for k, v in result.as_dict().items() if k != "cutoff"):
        audit(db, actor, "privacy.pseudonymise", "privacy", None, result.as_dict())
    db.commit()
    log.info("pseudonymised raw detail older than %s days: %s", older_than_days, result.as_dict())
    return result


def daily_job(session_factory: Callable[[], Session],
              older_than_days: int | None = None) -> PseudonymiseResult:
    """What the server's runner calls once a day (retention from `FABPASS_RETENTION_DAYS`)."""
    days = older_than_days if older_than_days is not None else retention_days_from_env()
    with session_factory() as db:
        return pseudonymise(db, days)

