"""Paid-use documents: a member's statement for a period and a site's monthly accounting export.

Both are built from the same rows as the balance (`server.services.billing`), so they reconcile
by construction: a statement's closing balance is its opening balance + top-ups - charges, and
the export's charge total is the sum of its charge rows. Amounts are `Decimal` euros (two
places) for people and spreadsheets; the arithmetic stays in integer cents.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from server.models import Charge, Machine, Member, Site, TopUp
from server.services.billing import balances

STATEMENT_COLUMNS = ["date", "type", "machine", "reference", "minutes", "tariff_version", "note",
                     "amount"]
ACCOUNTING_COLUMNS = ["type", "date", "member_no", "member", "machine", "session", "minutes",
                      "method", "reference", "amount"]


def euros(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def _local(when: datetime, tz: ZoneInfo) -> str:
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _note(c: Charge) -> str | None:
    if c.override:
        return f"{c.override}: {c.reason}" if c.reason else c.override
    return c.free_reason


def statement(db: Session, member_id: int, since: datetime, until: datetime,
              tz: str = "UTC") -> dict[str, Any]:
    """Opening balance, the period's charges (by session start) and top-ups, closing balance."""
    zone = ZoneInfo(tz or "UTC")
    t_open, c_open = balances(db, [member_id], before=since)[member_id]
    t_close, c_close = balances(db, [member_id], before=until)[member_id]
    charges = list(db.scalars(
        select(Charge).where(Charge.member_id == member_id, Charge.started_at >= since,
                             Charge.started_at < until)
        .options(selectinload(Charge.machine), selectinload(Charge.session))
        .order_by(Charge.started_at, Charge.id)))
    topups = list(db.scalars(select(TopUp).where(
        TopUp.member_id == member_id, TopUp.voided.is_(False), TopUp.at >= since,
        TopUp.at < until).order_by(TopUp.at, TopUp.id)))
    rows = [{"date": _local(c.started_at, zone), "machine": c.machine.name if c.machine else None,
             "session": c.session.session_uuid, "minutes": c.minutes_billed,
             "tariff_version": c.tariff_version, "amount": euros(c.amount_cents),
             "amount_cents": c.amount_cents, "note": _note(c)} for c in charges]
    top_rows = [{"date": _local(t.at, zone), "method": t.method, "reference": t.reference,
                 "amount": euros(t.amount_cents), "amount_cents": t.amount_cents} for t in topups]
    charged = sum(c.amount_cents for c in charges)
    paid = sum(t.amount_cents for t in topups)
    opening, closing = t_open - c_open, t_close - c_close
    return {"opening_cents": opening, "closing_cents": closing, "charges_cents": charged,
            "topups_cents": paid, "charges": rows, "topups": top_rows,
            "reconciles": opening + paid - charged == closing}


def month_bounds(month: str, tz: str) -> tuple[datetime, datetime]:
    """`"2026-11"` in the site's zone -> [first instant, first instant of the next) in UTC."""
    first = date.fromisoformat(month + "-01")
    nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    zone = ZoneInfo(tz or "UTC")
    return (datetime(first.year, first.month, 1, tzinfo=zone).astimezone(UTC),
            datetime(nxt.year, nxt.month, 1, tzinfo=zone).astimezone(UTC))


def accounting(db: Session, site: Site, month: str) -> dict[str, Any]:
    """A site's month for the accounts: every charge on its machines, every top-up recorded for
    its members (home site), and the balances of the members concerned; with the totals."""
    zone = ZoneInfo(site.timezone or "UTC")
    since, until = month_bounds(month, site.timezone)
    charges = list(db.scalars(
        select(Charge).join(Machine, Machine.id == Charge.machine_id)
        .where(Machine.site_id == site.id, Charge.started_at >= since, Charge.started_at < until)
        .options(selectinload(Charge.machine), selectinload(Charge.session),
                 selectinload(Charge.member)).order_by(Charge.started_at, Charge.id)))
    topups = list(db.scalars(
        select(TopUp).where(TopUp.site_id == site.id, TopUp.voided.is_(False), TopUp.at >= since,
                            TopUp.at < until)
        .options(selectinload(TopUp.member)).order_by(TopUp.at, TopUp.id)))
    rows: list[dict[str, Any]] = []
    for c in charges:
        m = c.member
        rows.append({"type": "charge", "date": _local(c.started_at, zone),
                     "member_no": m.member_no if m else None, "member": m.name if m else None,
                     "machine": c.machine.slug if c.machine else None,
                     "session": c.session.session_uuid, "minutes": c.minutes_billed,
                     "amount": euros(c.amount_cents)})
    for t in topups:
        rows.append({"type": "topup", "date": _local(t.at, zone), "member_no": t.member.member_no,
                     "member": t.member.name, "method": t.method, "reference": t.reference,
                     "amount": euros(t.amount_cents)})
    member_ids = {c.member_id for c in charges if c.member_id is not None}
    member_ids |= {t.member_id for t in topups}
    member_ids |= set(db.scalars(select(TopUp.member_id).where(TopUp.site_id == site.id)))
    members = {m.id: m for m in db.scalars(select(Member).where(
        or_(Member.id.in_(sorted(member_ids)), Member.site_id == site.id)))}
    closing = balances(db, members, before=until)
    balance_rows = []
    for mid in sorted(members, key=lambda i: members[i].name):
        paid_in, owed = closing[mid]
        if mid not in member_ids and paid_in == owed:
            continue  # a member of the site who never used paid machines
        balance_rows.append({"type": "balance", "date": _local(until, zone),
                             "member_no": members[mid].member_no, "member": members[mid].name,
                             "amount": euros(paid_in - owed)})
    charged = sum(c.amount_cents for c in charges)
    paid = sum(t.amount_cents for t in topups)
    return {"rows": rows + balance_rows, "charges_cents": charged, "topups_cents": paid,
            "balances_cents": sum(p - o for p, o in closing.values()),
            "since": since, "until": until}


__all__ = ["ACCOUNTING_COLUMNS", "STATEMENT_COLUMNS", "accounting", "euros", "month_bounds",
           "statement"]
