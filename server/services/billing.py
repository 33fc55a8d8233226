"""Paid use (issue 19): tariff versions, charges from closed sessions, top-ups, balances.

Charges follow the sessions whoever writes them. A session-event listener notes every closed
session that is inserted or whose times, durations or member change, and settles them just
before the transaction commits: one charge per session (`charges.session_id` is unique), the
tariff version in effect when the session started, recomputed (and audited) when the session
is corrected; a resent event changes nothing, so it charges nothing twice. A manager's waiver or
adjustment survives recomputation.

A member's balance is `top-ups - charges`, computed, never stored. When a change moves a
balance across a machine's `min_balance_cents`, the nodes that may list the member get a new
list (`credit_ok`, see `server.services.acl`); a node never stops a running session for it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import event, func, or_, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from protocol import BadgeEntry
from server.errors import N_, Invalid, NotFound
from server.models import (
    Authorization,
    AuthRole,
    Charge,
    Machine,
    Member,
    Tariff,
    TrainingSignoff,
    UsageSession,
    machine_group_members,
)
from server.services.access import machine_record_filters
from server.services.audit import audit
from server.services.common import DEFAULT_PER_PAGE, Page, get_machine, paginate
from server.services.credit import (
    DELTAS,
    MAX_TOPUP,
    METHODS,
    add_topup,
    balance,
    balances,
    check_thresholds,
    note_delta,
)
from server.services.dirty import mark_nodes_dirty
from server.services.tariffs import min_balance, price, thresholds, validate_tariff
from server.services.validation import text_field

log = logging.getLogger(__name__)

# the columns of a closed session whose change re-prices it
PRICED_COLUMNS = ("started_at", "ended_at", "duration_s", "active_s", "member_id", "machine_id",
                  "energy_wh")
_PENDING = "fabpass_billing_pending"
SIGNOFF_FREE = timedelta(minutes=30)


# ---------------------------------------------------------------- tariffs


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def month_start(when: datetime, tz: str) -> datetime:
    """The first instant of `when`'s month in the zone `tz`, in UTC."""
    local = when.astimezone(ZoneInfo(tz or "UTC"))
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def _valid_from(value: Any, now: datetime) -> datetime:
    if value is None:
        return now
    if isinstance(value, str) and "T" in value.upper() and len(value) >= 19:
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
            if dt.tzinfo is not None and 2000 <= dt.year <= 2200:
                return dt.astimezone(UTC)
        except ValueError:
            pass
    raise Invalid(N_("tariff.valid_from must be an RFC 3339 time"),
                  {"tariff.valid_from": N_("an RFC 3339 time, e.g. 2026-11-01T00:00:00Z")})


def tariff_versions(db: Session, machine_id: int) -> list[Tariff]:
    """A machine's versions, oldest first (the order in which they take effect)."""
    return list(db.scalars(select(Tariff).where(Tariff.machine_id == machine_id)
                           .order_by(Tariff.valid_from, Tariff.version)))


def _in_effect(versions: list[Tariff], when: datetime) -> Tariff | None:
    found = None
    for t in versions:
        if t.valid_from <= when:
            found = t
    return found


def current_tariff(db: Session, machine_id: int, now: datetime | None = None) -> Tariff | None:
    """The version in effect now (its `spec` None: free from then on), or None: never priced."""
    return _in_effect(tariff_versions(db, machine_id), _now(now))


def set_tariff(db: Session, machine_id: int, raw: Any, *, actor: str,
               now: datetime | None = None) -> Tariff:
    """Add a tariff version (`raw` None: free from `now`). A version may not take effect in a
    month that is over (its charges are closed: exported to the accounts); sessions that started
    since `valid_from` are charged again under it."""
    now = _now(now)
    machine = get_machine(db, machine_id)
    if raw is None:
        spec, valid_from = None, now
    else:
        spec = validate_tariff(raw)
        valid_from = _valid_from(raw.get("valid_from"), now)
        if valid_from < month_start(now, machine.site.timezone):
            raise Invalid(N_("tariff.valid_from is in a month whose charges are closed"),
                          {"tariff.valid_from": N_("not before the first day of this month")})
    last = db.scalar(select(func.max(Tariff.version)).where(Tariff.machine_id == machine.id))
    tariff = Tariff(machine_id=machine.id, version=(last or 0) + 1, valid_from=valid_from,
                    spec=spec, created_by=actor[:200])
    db.add(tariff)
    db.flush()
    audit(db, actor, "tariff.set", "machine", machine.id,
          {"version": tariff.version, "valid_from": valid_from.isoformat(), "tariff": spec})
    closed = db.scalars(select(UsageSession).where(
        UsageSession.machine_id == machine.id, UsageSession.started_at >= valid_from,
        UsageSession.ended_at.is_not(None)))
    settle(db, list(closed), actor=actor)
    mark_nodes_dirty(db, [machine.node_id], "tariff.set")
    db.flush()
    return tariff


# ---------------------------------------------------------------- charges


class PricedSession(Protocol):
    """What pricing reads of a session: an ORM `UsageSession`, or the ingest's fast-path row
    (`server.messaging.session_rows.SessionRow`), which the ingest settles itself."""

    @property
    def id(self) -> int | None: ...

    @property
    def session_uuid(self) -> str: ...

    @property
    def machine_id(self) -> int | None: ...

    @property
    def member_id(self) -> int | None: ...

    @property
    def started_at(self) -> datetime: ...

    @property
    def ended_at(self) -> datetime | None: ...

    @property
    def duration_s(self) -> float | None: ...

    @property
    def active_s(self) -> float | None: ...

    @property
    def energy_wh(self) -> float | None: ...


class _FreeUse:
    """Who uses which machine free, looked up once for a batch of sessions: trainers on the
    machine (directly or through a group) when the session starts, and the supervised first use
    of a training sign-off: a session of the trainer or the trainee that includes the sign-off
    or starts within `SIGNOFF_FREE` after it (the sign-off's time is the node's event time)."""

    def __init__(self, db: Session, rows: list[PricedSession]) -> None:
        members = {r.member_id for r in rows if r.member_id is not None}
        machines = {r.machine_id for r in rows if r.machine_id is not None}
        self.trainer: dict[tuple[int, int], list[Authorization]] = defaultdict(list)
        self.signoffs: dict[tuple[int, int | None], list[datetime]] = defaultdict(list)
        if not members or not machines:
            return
        groups: dict[int, set[int]] = defaultdict(set)  # group -> machines
        for gid, mid in db.execute(select(machine_group_members.c.group_id,
                                          machine_group_members.c.machine_id)
                                   .where(machine_group_members.c.machine_id.in_(machines))):
            groups[gid].add(mid)
        for a in db.scalars(select(Authorization).where(
                Authorization.member_id.in_(members), Authorization.role == AuthRole.trainer,
                or_(Authorization.machine_id.in_(machines),
                    Authorization.group_id.in_(list(groups) or [0])))):
            targets = {a.machine_id} if a.machine_id is not None else groups.get(a.group_id or 0, set())
            for mid in targets:
                if mid is not None:
                    self.trainer[(a.member_id, mid)].append(a)
        first = min(r.started_at for r in rows) - SIGNOFF_FREE
        last = max(r.ended_at or r.started_at for r in rows)
        for machine_id, trainer, trainee, at in db.execute(
                select(TrainingSignoff.machine_id, TrainingSignoff.trainer_member_id,
                       TrainingSignoff.trainee_member_id, TrainingSignoff.created_at)
                .where(TrainingSignoff.machine_id.in_(machines),
                       TrainingSignoff.outcome.in_(("granted", "already")),
                       TrainingSignoff.created_at >= first, TrainingSignoff.created_at <= last)):
            for member in (trainer, trainee):
                if member is not None:
                    self.signoffs[(member, machine_id)].append(at)

    def reason(self, row: PricedSession) -> str | None:
        if row.member_id is None or row.machine_id is None:
            return None
        when = row.started_at
        for a in self.trainer.get((row.member_id, row.machine_id), []):
            if (a.granted_at <= when and (a.revoked_at is None or a.revoked_at > when)
                    and (a.expires_at is None or a.expires_at > when)):
                return "trainer"
        end = row.ended_at or when
        if any(when - SIGNOFF_FREE <= at <= end
               for at in self.signoffs.get((row.member_id, row.machine_id), [])):
            return "signoff"
        return None


def _chargeable(row: PricedSession) -> bool:
    state = sa_inspect(row, raiseerr=False)  # None for the ingest's plain rows
    stored = state.persistent if state is not None else row.id is not None
    return (stored and row.ended_at is not None and row.duration_s is not None
            and row.machine_id is not None)


def settle(db: Session, rows: Iterable[PricedSession], *, actor: str = "ingest") -> None:
    """Create or update the charge of each closed session (idempotent: settling twice changes
    nothing). Sessions on machines that never had a tariff get no charge row."""
    todo = {r.id: r for r in rows if _chargeable(r) and r.id is not None}
    if not todo:
        return
    machine_ids = {r.machine_id for r in todo.values() if r.machine_id is not None}
    versions: dict[int, list[Tariff]] = defaultdict(list)
    for t in db.scalars(select(Tariff).where(Tariff.machine_id.in_(machine_ids))
                        .order_by(Tariff.valid_from, Tariff.version)):
        versions[t.machine_id].append(t)
    if not versions:  # no machine here was ever priced, so no session here has a charge
        return
    existing = {c.session_id: c for c in db.scalars(
        select(Charge).where(Charge.session_id.in_(list(todo))))}
    work = []
    for sid, row in todo.items():
        charge = existing.get(sid)
        tariff = _in_effect(versions.get(row.machine_id or 0, []), row.started_at)
        if charge is not None or (tariff is not None and tariff.spec is not None):
            work.append((row, charge, tariff))
    if not work:
        return
    rows_ = [w[0] for w in work]
    free = _FreeUse(db, rows_)
    member_ids = {r.member_id for r in rows_ if r.member_id is not None}
    tags = dict(db.execute(select(Member.id, Member.tags).where(Member.id.in_(member_ids)))
                .all()) if member_ids else {}
    for row, charge, tariff in work:
        _apply(db, row, charge, tariff, actor, free.reason(row), tags.get(row.member_id or 0))


def _apply(db: Session, row: PricedSession, charge: Charge | None, tariff: Tariff | None,
           actor: str, free: str | None, tags: list[str] | None) -> None:
    if tariff is None or tariff.spec is None:
        free = None
    if tariff is None or tariff.spec is None or free is not None:
        cents, minutes, category = 0, 0, None
    else:
        p = price(tariff.spec, tags, row.duration_s or 0.0, row.active_s,
                  getattr(row, "energy_wh", None))
        cents, minutes, category = p.cents, p.minutes, p.category
    new = {"started_at": row.started_at, "tariff_id": tariff.id if tariff else None,
           "tariff_version": tariff.version if tariff else None, "category": category,
           "minutes_billed": minutes, "computed_cents": cents, "free_reason": free,
           "machine_id": row.machine_id}
    if row.member_id is not None or charge is None:  # a pseudonymised session keeps its debtor
        new["member_id"] = row.member_id
    if charge is None:
        charge = Charge(session_id=row.id, amount_cents=cents, **new)
        db.add(charge)
        note_delta(db, charge.member_id, cents)
        return
    old = {k: getattr(charge, k) for k in new}
    if old == new:
        return
    old_amount, old_member = charge.amount_cents, charge.member_id
    for k, v in new.items():
        setattr(charge, k, v)
    if charge.override is None:
        charge.amount_cents = cents
    charge.updated_at = datetime.now(UTC)
    note_delta(db, old_member, -old_amount)
    note_delta(db, charge.member_id, charge.amount_cents)
    audit(db, actor, "charge.recompute", "session", row.session_uuid,
          {"from": {k: v for k, v in old.items() if old[k] != new[k]},
           "to": {k: v for k, v in new.items() if old[k] != new[k]},
           "amount_cents": [old_amount, charge.amount_cents]})


def get_charge(db: Session, charge_id: int) -> Charge:
    charge = db.get(Charge, charge_id)
    if charge is None:
        raise NotFound(N_("charge %(id)s not found"), {"id": charge_id})
    return charge


def adjust_charge(db: Session, charge_id: int, *, reason: Any, actor: str,
                  waive: bool = False, amount_cents: Any = None) -> Charge:
    """A manager's decision on one charge: waive it, set another amount, or (neither) go back
    to the tariff's amount. The reason is required and kept with the audit trail."""
    charge = get_charge(db, charge_id)
    why = text_field(reason, "reason", max_len=500)
    if waive:
        override, amount = "waived", 0
    elif amount_cents is not None:
        if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or not (
                0 <= amount_cents <= MAX_TOPUP):
            raise Invalid(N_("amount_cents must be a whole number of cents, 0 or more"),
                          {"amount_cents": N_("a whole number of cents, 0 or more")})
        override, amount = "adjusted", amount_cents
    else:
        override, amount = None, charge.computed_cents
    before = charge.amount_cents
    charge.override, charge.amount_cents, charge.reason = override, amount, why
    charge.updated_at = datetime.now(UTC)
    note_delta(db, charge.member_id, amount - before)
    audit(db, actor, f"charge.{override or 'restore'}", "charge", charge.id,
          {"session_id": charge.session_id, "amount_cents": [before, amount], "reason": why})
    db.flush()
    return charge


def list_charges(db: Session, member_id: int | None = None, machine_id: int | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 page: int | None = 1, per_page: int | None = DEFAULT_PER_PAGE,
                 site_ids: Collection[int] | None = None) -> Page[Charge]:
    """Charges of sessions started in [since, until), newest first, scoped like sessions."""
    stmt = machine_record_filters(
        select(Charge).order_by(Charge.started_at.desc(), Charge.id.desc()),
        machine_col=Charge.machine_id, member_col=Charge.member_id, time_col=Charge.started_at,
        site_ids=site_ids, member_id=member_id, machine_id=machine_id, since=since, until=until)
    return paginate(db, stmt, page, per_page)


# ---------------------------------------------------------------- credit


def credit_entries(db: Session, machine: Machine, entries: list[BadgeEntry],
                   now: datetime) -> list[BadgeEntry]:
    """The list's badges with `credit_ok: false` for members below the machine's current
    minimum balance (trainers use their machines free, so they are never below it)."""
    tariff = current_tariff(db, machine.id, now)
    if tariff is None or not thresholds(tariff.spec):
        return entries
    ids = {e.member for e in entries if e.role != "trainer"}
    tags = dict(db.execute(select(Member.id, Member.tags).where(Member.id.in_(ids))).all()) if ids else {}
    money = balances(db, ids)
    out = []
    for e in entries:
        need = min_balance(tariff.spec, tags.get(e.member)) if e.member in ids else None
        if need is not None and money[e.member][0] - money[e.member][1] < need:
            e = replace(e, credit_ok=False)
        out.append(e)
    return out


# ---------------------------------------------------------------- the session listener


@event.listens_for(Session, "before_flush")
def _note_closed_sessions(session: Session, _ctx: Any, _instances: Any) -> None:
    pending: list[UsageSession] | None = None
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, UsageSession) or obj.ended_at is None:
            continue
        state = sa_inspect(obj)
        if not state.pending and not any(state.attrs[k].history.has_changes() for k in PRICED_COLUMNS):
            continue
        if pending is None:
            pending = session.info.setdefault(_PENDING, [])
        pending.append(obj)


@event.listens_for(Session, "before_commit")
def _settle_before_commit(session: Session) -> None:
    if not session.info.get(_PENDING) and not session.info.get(DELTAS):
        if not session.new and not session.dirty:
            return
    session.flush()
    rows: list[UsageSession] = session.info.pop(_PENDING, [])
    if rows:
        unique = list({id(r): r for r in rows}.values())
        settle(session, unique)
        session.flush()
    check_thresholds(session)


@event.listens_for(Session, "after_rollback")
def _forget_on_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(DELTAS, None)


__all__ = ["METHODS", "add_topup", "adjust_charge", "balance", "balances", "check_thresholds",
           "credit_entries", "current_tariff", "get_charge", "list_charges", "month_start",
           "set_tariff", "settle", "tariff_versions"]
