"""Prepaid credit: top-ups, balances, and noticing when a balance crosses a machine's minimum.

A member's balance is `top-ups - charges`, computed, never stored. Every change of what a
member owes in a transaction is noted (`note_delta`); before the commit, `check_thresholds`
republishes the lists of members whose balance crossed any tariff's `min_balance_cents`, so the
nodes decide `no_credit` (and stop deciding it) from a fresh list.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.errors import N_, Invalid
from server.models import Charge, Tariff, TopUp
from server.services.audit import audit
from server.services.common import get_member
from server.services.dirty import mark_nodes_dirty, member_node_ids
from server.services.tariffs import thresholds
from server.services.validation import text_field

METHODS = ("cash", "card", "HelloAsso", "transfer")  # as the contract spells them
MAX_TOPUP = 100_000_000  # one million in cents
DELTAS = "fabpass_billing_deltas"


def add_topup(db: Session, member_id: int, amount_cents: Any, method: Any,
              reference: Any = None, *, actor: str, at: datetime | None = None) -> TopUp:
    """Record money received for a member's credit (negative: a refund)."""
    member = get_member(db, member_id)
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int):
        raise Invalid(N_("amount_cents must be a whole number of cents"),
                      {"amount_cents": N_("a whole number of cents (no fraction)")})
    if amount_cents == 0 or abs(amount_cents) > MAX_TOPUP:
        raise Invalid(N_("amount_cents must not be 0"),
                      {"amount_cents": N_("a non-zero number of cents")})
    how = next((m for m in METHODS if isinstance(method, str)
                and m.casefold() == method.strip().casefold()), None)
    if how is None:
        raise Invalid(N_("method must be one of %(choices)s"),
                      {"method": "one of " + ", ".join(METHODS)}, {"choices": ", ".join(METHODS)})
    ref = text_field(reference, "reference", max_len=200, required=False)
    row = TopUp(member_id=member.id, site_id=member.site_id, amount_cents=amount_cents,
                method=how, reference=ref, actor=actor[:200], at=(at or datetime.now(UTC)).astimezone(UTC))
    db.add(row)
    db.flush()
    audit(db, actor, "topup.create", "member", member.id,
          {"topup": row.id, "amount_cents": amount_cents, "method": how, "reference": ref})
    note_delta(db, member.id, -amount_cents)  # a top-up lowers what is owed
    check_thresholds(db)
    return row


def balances(db: Session, member_ids: Collection[int],
             before: datetime | None = None) -> dict[int, tuple[int, int]]:
    """member -> (top-ups, charges) in cents; `before`: only up to that time."""
    ids = sorted(set(member_ids))
    out = {m: (0, 0) for m in ids}
    if not ids:
        return out
    tq = select(TopUp.member_id, func.coalesce(func.sum(TopUp.amount_cents), 0)).where(
        TopUp.member_id.in_(ids), TopUp.voided.is_(False))
    cq = select(Charge.member_id, func.coalesce(func.sum(Charge.amount_cents), 0)).where(
        Charge.member_id.in_(ids))
    if before is not None:
        tq, cq = tq.where(TopUp.at < before), cq.where(Charge.started_at < before)
    for mid, total in db.execute(tq.group_by(TopUp.member_id)).all():
        out[mid] = (int(total), out[mid][1])
    for cid, total in db.execute(cq.group_by(Charge.member_id)).all():
        if cid is not None:
            out[cid] = (out[cid][0], int(total))
    return out


def balance(db: Session, member_id: int) -> dict[str, int]:
    """The contract's balance object."""
    get_member(db, member_id)
    topups, charges = balances(db, [member_id])[member_id]
    return {"balance_cents": topups - charges, "topups_cents": topups, "charges_cents": charges}


def note_delta(db: Session, member_id: int | None, owed_cents: int) -> None:
    """Remember how much more this member owes in this transaction (see `check_thresholds`)."""
    if member_id is None or owed_cents == 0:
        return
    deltas: dict[int, int] = db.info.setdefault(DELTAS, {})
    deltas[member_id] = deltas.get(member_id, 0) + owed_cents


def check_thresholds(db: Session) -> None:
    """Republish the lists of members whose balance crossed a minimum balance in this
    transaction (before -> after), so that nodes decide `no_credit` from a fresh list."""
    deltas: dict[int, int] = db.info.pop(DELTAS, {})
    if not deltas:
        return
    levels: set[int] = set()
    for spec in db.scalars(select(Tariff.spec).where(Tariff.spec.is_not(None))):
        levels |= thresholds(spec)
    if not levels:
        return
    now_bal = balances(db, list(deltas))
    for mid, owed in deltas.items():
        after = now_bal[mid][0] - now_bal[mid][1]
        before = after + owed
        if any((before >= t) != (after >= t) for t in levels):
            mark_nodes_dirty(db, member_node_ids(db, mid), "credit")



__all__ = ["DELTAS", "METHODS", "MAX_TOPUP", "add_topup", "balance", "balances",
           "check_thresholds", "note_delta"]
