"""Personal data: a member's export, erasure, and pseudonymisation of old raw detail.

Why three operations:

- *Export* (right of access): everything the database holds about one member, as
  JSON-ready dicts — the member row, badges, authorizations, sessions, raw events
  naming their badges, trainer sign-offs, linked web logins, audit entries and
  dead letters that mention their badges.
- *Erasure* (right to erasure): identity goes (name, e-mail, member number,
  badge UIDs everywhere they were copied, audit details, linked web logins), but
  the member row stays as an anonymous number so usage totals, machine hours and
  reports are unchanged. Tags and site stay: they are the categories funder
  reports aggregate (with small counts masked).
- *Pseudonymisation* (storage limitation): raw detail older than a retention
  (badge UIDs in sessions, events, sign-offs) is replaced by a keyed pseudonym
  (HMAC with a key kept in the settings table), so old records stay countable
  and linkable to each other but no longer carry a card's UID; raw dead letters
  and never-enrolled badges older than the retention are deleted. The server's
  runner calls `daily_job` once a day.

Replacement UIDs start with a letter outside hex (`E` erased, `P` pseudonymised), so
they can never collide with a real card's UID nor pass UID validation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, delete, or_, select
from sqlalchemy.orm import Session

from server.errors import N_, Conflict, Invalid
from server.models import (
    AuditLog,
    Authorization,
    Badge,
    BadgeStatus,
    DeadLetter,
    Event,
    Member,
    Node,
    PendingEnrolment,
    Refusal,
    Setting,
    TrainingSignoff,
    UnknownBadge,
    UsageSession,
    User,
)
from server.services.audit import audit
from server.services.common import get_member, now_utc
from server.services.dirty import mark_nodes_dirty, member_node_ids
from server.services.logins import close_all_logins
from server.services.personal import IdentityMatcher

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


# ---------------------------------------------------------------- export


def export_member(db: Session, member_id: int) -> dict[str, Any]:
    """Everything stored about one member, JSON-ready (right of access)."""
    member = get_member(db, member_id)
    badges = list(db.scalars(select(Badge).where(Badge.member_id == member.id).order_by(Badge.id)))
    uids = {b.uid for b in badges}
    auths = list(db.scalars(select(Authorization).where(
        or_(Authorization.member_id == member.id,
            Authorization.granted_by_member_id == member.id)).order_by(Authorization.id)))
    sessions = list(db.scalars(select(UsageSession).where(
        or_(UsageSession.member_id == member.id, UsageSession.badge_uid.in_(uids) if uids
            else UsageSession.member_id == member.id))
        .order_by(UsageSession.started_at, UsageSession.id)))
    events = _member_events(db, member.id, uids)
    signoffs = list(db.scalars(select(TrainingSignoff).where(or_(
        TrainingSignoff.trainer_member_id == member.id,
        TrainingSignoff.trainee_member_id == member.id,
        TrainingSignoff.trainer_uid.in_(uids), TrainingSignoff.trainee_uid.in_(uids)))
        .order_by(TrainingSignoff.id)))
    users = list(db.scalars(select(User).where(User.member_id == member.id).order_by(User.id)))
    matcher = _matcher(member, uids, users)
    audits = _member_audit(db, member.id, uids, [a.id for a in auths], users, matcher)
    dead = _member_dead_letters(db, matcher)
    nodes = _member_nodes(db, uids)
    refusals = _member_refusals(db, member.id, uids)
    return {
        "format": EXPORT_FORMAT,
        "exported_at": _plain(now_utc()),
        "member": {**_row(member), "site": member.site.slug if member.site else None},
        "badges": [_row(b) for b in badges],
        "authorizations": [
            {**_row(a), "machine": a.machine.slug if a.machine else None,
             "group": a.group.slug if a.group else None} for a in auths],
        "sessions": [
            {**_row(s), "machine": s.machine.slug if s.machine else None} for s in sessions],
        "events": [_row(e) for e in events],
        "refusals": [{**_row(r), "machine": r.machine.slug if r.machine else None}
                     for r in refusals],
        "training_signoffs": [_row(t) for t in signoffs],
        "web_users": [_row(u, exclude=("password_hash",)) for u in users],
        "audit_log": [_row(a) for a in audits],
        "dead_letters": [_row(d) for d in dead],
        "node_statuses": [{"id": n.id, "node": n.slug, "last_status": _plain(n.last_status)}
                          for n in nodes],
    }


def export_member_json(db: Session, member_id: int) -> str:
    return json.dumps(export_member(db, member_id), indent=2, ensure_ascii=False, sort_keys=True)


def _member_events(db: Session, member_id: int, uids: set[str]) -> list[Event]:
    if not uids:
        return []
    cond = _mentions(Event.data, uids)
    out = []
    for ev in db.scalars(select(Event).where(cond).order_by(Event.id)):
        if _data_uids(ev.data) & uids or (isinstance(ev.data, dict)
                                          and ev.data.get("member") == member_id):
            out.append(ev)
    return out


def _matcher(member: Member, uids: Iterable[str], users: Iterable[User]) -> IdentityMatcher:
    """The one matcher of this member's identity: their UIDs in any spelling, and their name,
    e-mail, number and login e-mails (not the placeholders an earlier erasure left)."""
    texts = [] if member.erased_at is not None else [member.name, member.email, member.member_no]
    texts += [u.email for u in users if not u.email.endswith("@invalid")]
    return IdentityMatcher([u for u in uids if not _is_replaced(u)], texts)
def _member_refusals(db: Session, member_id: int, uids: set[str]) -> list[Refusal]:
    cond = Refusal.member_id == member_id
    if uids:
        cond = or_(cond, Refusal.uid.in_(sorted(uids)))
    return list(db.scalars(select(Refusal).where(cond).order_by(Refusal.at, Refusal.id)))


def open_session_machines(db: Session, member_id: int) -> list[str]:
    """Names of the machines where the member has a session open now (erasure waits for them)."""
    rows = db.scalars(select(UsageSession).where(UsageSession.member_id == member_id,
                                                 UsageSession.ended_at.is_(None)))
    return sorted({s.machine.name if s.machine else "?" for s in rows})


def _member_audit(db: Session, member_id: int, uids: set[str], auth_ids: list[int],
                  users: Iterable[User] = (), matcher: IdentityMatcher | None = None,
                  ) -> list[AuditLog]:
    """Audit entries about the member, their badges, authorizations and linked logins, and
    every other entry (any entity type) whose id, actor or details the matcher finds."""
    conds: list[Any] = [(AuditLog.entity_type == "member") & (AuditLog.entity_id == str(member_id))]
    for user in users:
        conds.append((AuditLog.entity_type == "user") & (AuditLog.entity_id == str(user.id)))
        conds.append(AuditLog.actor.like(f"user:{user.id} %"))
    if uids:
        conds.append((AuditLog.entity_type == "badge") & AuditLog.entity_id.in_(uids))
    if auth_ids:
        conds.append((AuditLog.entity_type == "authorization")
                     & AuditLog.entity_id.in_([str(i) for i in auth_ids]))
    found = {a.id: a for a in db.scalars(select(AuditLog).where(or_(*conds)))}
    if matcher:
        for entry in db.scalars(select(AuditLog).execution_options(yield_per=BATCH)):
            if entry.id not in found and matcher.search(entry.entity_id, entry.actor,
                                                        entry.details):
                found[entry.id] = entry
    return [found[k] for k in sorted(found)]


def _member_nodes(db: Session, uids: set[str]) -> list[Node]:
    """Nodes whose last status shows one of these badges (a session running now)."""
    if not uids:
        return []
    return [n for n in db.scalars(select(Node).where(_mentions(Node.last_status, uids))
                                  .order_by(Node.id))
            if _data_uids((n.last_status or {}).get("session")) & uids]


def _member_dead_letters(db: Session, matcher: IdentityMatcher) -> list[DeadLetter]:
    """Dead letters whose payload or reason holds the member's identity in any spelling."""
    if not matcher:
        return []
    return [row for row in db.scalars(select(DeadLetter).order_by(DeadLetter.id)
                                      .execution_options(yield_per=BATCH))
            if matcher.search(row.payload, row.reason)]


# ---------------------------------------------------------------- erasure


@dataclass
class ErasureResult:
    member_id: int
    badges: int = 0
    sessions: int = 0
    events: int = 0
    signoffs: int = 0
    audit_entries: int = 0
    web_users: int = 0
    dead_letters: int = 0
    unknown_badges: int = 0
    refusals: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _erased_uid() -> str:
    return "E" + secrets.token_hex(10)[: _UID_LEN - 1].upper()


def _replace_uids(data: Any, mapping: dict[str, str]) -> Any:
    """Copy of event data / node status with every UID in `mapping` replaced."""
    if isinstance(data, dict):
        return {k: (mapping.get(v, v) if k in UID_KEYS and isinstance(v, str)
                    else _replace_uids(v, mapping)) for k, v in data.items()}
    if isinstance(data, list):
        return [_replace_uids(v, mapping) for v in data]
    return data


def _scrub_labels(data: Any, name: str) -> Any:
    if isinstance(data, dict):
        return {k: (None if k == "label" and v == name else _scrub_labels(v, name))
                for k, v in data.items()}
    if isinstance(data, list):
        return [_scrub_labels(v, name) for v in data]
    return data


def erase_member(db: Session, member_id: int, *, actor: str) -> ErasureResult:
    """Remove a member's identity, keep anonymous usage (right to erasure).

    The member is deactivated (their badges leave every access list), identifying
    fields are cleared, each badge UID is replaced by a random one wherever it was
    copied, audit details about them are emptied, linked web logins are disabled and
    anonymised, and raw payloads naming their badges are deleted. Sessions keep
    their machine, times and durations, so reports do not change. Callers commit.
    """
    member = get_member(db, member_id)
    busy = open_session_machines(db, member.id)
    if busy:
        raise Conflict(N_("%(name)s has a session open on %(machines)s: end it first (badge out "
                          "on the machine, or Stop on the machine page), then erase."),
                       {"name": member.name, "machines": ", ".join(busy)})
    result = ErasureResult(member_id=member.id)
    nodes = member_node_ids(db, member.id)
    old_name = member.name
    badges = list(db.scalars(select(Badge).where(Badge.member_id == member.id)))
    mapping = {b.uid: _erased_uid() for b in badges if not _is_replaced(b.uid)}
    auth_ids = list(db.scalars(select(Authorization.id).where(or_(
        Authorization.member_id == member.id, Authorization.granted_by_member_id == member.id))))
    users = list(db.scalars(select(User).where(User.member_id == member.id)))
    matcher = _matcher(member, mapping, users)

    # Audit entries first: they are found through the original UIDs, texts and logins.
    for entry in _member_audit(db, member.id, set(mapping), auth_ids, users, matcher):
        entry.entity_id = matcher.replace(entry.entity_id, mapping, ERASED_NAME)
        entry.actor = matcher.replace(entry.actor, mapping, ERASED_NAME)
        if entry.entity_type in ("member", "badge") or (
                entry.entity_type == "user" and entry.entity_id in {str(u.id) for u in users}):
            entry.details = {"erased": True}
        elif entry.entity_type == "authorization" and isinstance(entry.details, dict):
            # keep the structure, drop free text
            entry.details = {k: v for k, v in entry.details.items() if k in _AUDIT_KEEP}
        else:  # any other entity (a refused sign-off keeping the trainer's UID, ...)
            entry.details = matcher.replace(entry.details, mapping, ERASED_NAME)
        result.audit_entries += 1
    for row in _member_dead_letters(db, matcher):
        db.delete(row)
        result.dead_letters += 1
    for ev in _member_events(db, member.id, set(mapping)):
        ev.data = _replace_uids(ev.data, mapping)
        result.events += 1
    for refusal in _member_refusals(db, member.id, set(mapping)):
        refusal.uid = mapping.get(refusal.uid, refusal.uid)
        result.refusals += 1
    db.execute(delete(PendingEnrolment).where(PendingEnrolment.member_id == member.id))
    if mapping:
        result.unknown_badges = _deleted(
            db, delete(UnknownBadge).where(UnknownBadge.uid.in_(list(mapping))))
        for sess in db.scalars(select(UsageSession).where(
                or_(UsageSession.member_id == member.id,
                    UsageSession.badge_uid.in_(list(mapping))))):
            sess.badge_uid = mapping.get(sess.badge_uid, sess.badge_uid)
            result.sessions += 1
        for so in db.scalars(select(TrainingSignoff).where(or_(
                TrainingSignoff.trainer_uid.in_(list(mapping)),
                TrainingSignoff.trainee_uid.in_(list(mapping))))):
            so.trainer_uid = mapping.get(so.trainer_uid, so.trainer_uid)
            so.trainee_uid = mapping.get(so.trainee_uid, so.trainee_uid)
            result.signoffs += 1
        for node in _member_nodes(db, set(mapping)):
            node.last_status = _scrub_labels(_replace_uids(node.last_status, mapping), old_name)
    for badge in badges:
        badge.uid = mapping.get(badge.uid, badge.uid)
        badge.status = BadgeStatus.inactive
        result.badges += 1
    for auth in db.scalars(select(Authorization).where(Authorization.member_id == member.id)):
        auth.revoke_reason = None
    for user in users:
        user.email = f"erased-user-{user.id}@invalid"
        user.password_hash = "!erased"
        user.active = False
        user.member_id = None
        close_all_logins(db, user.id)
        result.web_users += 1

    member.name = ERASED_NAME
    member.email = None
    member.member_no = None
    member.active = False
    member.active_until = None
    member.erased_at = now_utc()
    db.flush()
    audit(db, actor, "member.erase", "member", member.id,
          {k: v for k, v in result.as_dict().items() if k != "member_id"})
    mark_nodes_dirty(db, nodes, "member.erase")
    db.flush()
    log.info("erased member %s: %s", member.id, result.as_dict())  # an id, never a name
    return result


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


__all__ = [
    "DEFAULT_RETENTION_DAYS", "ERASED_NAME", "EXPORT_FORMAT", "ErasureResult",
    "PseudonymiseResult", "daily_job", "erase_member", "export_member", "export_member_json",
    "pseudonym", "pseudonym_key", "pseudonymise", "retention_days_from_env",
]
