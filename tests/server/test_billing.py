"""Paid use (issue 19) on SQLite and PostgreSQL: tariffs, charges exactly once, top-ups,
balances, waivers, and the access list's `credit_ok`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from server_helpers import T0, ended, ev_in, started, status
from sqlalchemy import func, select

from server import services as s
from server.errors import Invalid
from server.models import AclDirty, AuditLog, Charge
from server.services import billing
from server.services.acl import compute_acl

MONTH = datetime(2026, 11, 1, tzinfo=UTC)  # T0 is 2026-11-22 10:00 UTC


def _tariff(db: Any, machine: Any, now: datetime = T0, **spec: Any) -> Any:
    t = billing.set_tariff(db, machine.id, spec, actor="test", now=now)
    db.commit()
    return t


def _session(ingest: Any, member: Any, start: datetime, duration: float, active: float | None = None,
             sid: str | None = None) -> str:
    sid = sid or str(uuid.uuid4())
    ingest.handle_batch([ev_in(started(sid, member=member.id, ts=start)),
                         ev_in(ended(sid, start, duration, duration if active is None else active,
                                     member=member.id))])
    return sid


def _charge(db: Any, sid: str) -> Charge:
    db.expire_all()
    found = [c for c in db.scalars(select(Charge)) if c.session.session_uuid == sid]
    assert len(found) == 1
    return found[0]


def test_rounding_per_started_block_and_session_fee(db: Any, lab: Any, ingest: Any) -> None:
    _tariff(db, lab["laser"], valid_from="2026-11-01T00:00:00Z", per_minute_cents=50,
            round_minutes=10, session_cents=100)
    c = _charge(db, _session(ingest, lab["alice"], T0, 601))  # 10 min 1 s -> 2 blocks of 10
    assert (c.minutes_billed, c.amount_cents, c.tariff_version) == (20, 100 + 20 * 50, 1)
    c = _charge(db, _session(ingest, lab["alice"], T0 + timedelta(hours=1), 600.0))  # exactly 10
    assert (c.minutes_billed, c.amount_cents) == (10, 600)


def test_minimum_and_active_basis(db: Any, lab: Any, ingest: Any) -> None:
    _tariff(db, lab["laser"], valid_from="2026-11-01T00:00:00Z", basis="active",
            per_minute_cents=10, minimum_cents=300)
    c = _charge(db, _session(ingest, lab["alice"], T0, 3600, active=60))
    assert (c.minutes_billed, c.amount_cents) == (1, 300)  # 1 active minute, minimum 3.00
    c = _charge(db, _session(ingest, lab["alice"], T0 + timedelta(hours=2), 3600, active=3000))
    assert (c.minutes_billed, c.amount_cents) == (50, 500)


def test_categories_by_member_tag(db: Any, lab: Any, ingest: Any) -> None:
    _tariff(db, lab["laser"], valid_from="2026-11-01T00:00:00Z", per_minute_cents=100,
            categories={"youth": {"per_minute_cents": 40}, "partner": {"session_cents": 5}})
    bob = s.create_member(db, "Bob Martin", None, "B1", "lab", [], actor="cli")
    db.commit()
    a = _charge(db, _session(ingest, lab["alice"], T0, 300))  # alice is tagged youth
    b = _charge(db, _session(ingest, bob, T0 + timedelta(hours=1), 300))
    assert (a.amount_cents, a.category) == (200, "youth")
    assert (b.amount_cents, b.category) == (500, None)


def test_tariff_change_mid_month_keeps_past_charges(db: Any, lab: Any, ingest: Any) -> None:
    _tariff(db, lab["laser"], now=datetime(2026, 11, 2, tzinfo=UTC),
            valid_from="2026-11-02T00:00:00Z", per_minute_cents=10)
    early = _session(ingest, lab["alice"], datetime(2026, 11, 10, 9, tzinfo=UTC), 600)
    _tariff(db, lab["laser"], now=datetime(2026, 11, 15, tzinfo=UTC),
            valid_from="2026-11-15T00:00:00Z", per_minute_cents=30)
    late = _session(ingest, lab["alice"], datetime(2026, 11, 20, 9, tzinfo=UTC), 600)
    assert (_charge(db, early).amount_cents, _charge(db, early).tariff_version) == (100, 1)
    assert (_charge(db, late).amount_cents, _charge(db, late).tariff_version) == (300, 2)


def test_session_across_midnight_and_dst_costs_its_duration(db: Any, lab: Any,
                                                           ingest: Any) -> None:
    # Europe/Paris leaves summer time on 2026-10-25 at 03:00 local: the wall clock repeats an
    # hour, the node's monotonic duration does not.
    start = datetime(2026, 10, 24, 21, 30, tzinfo=UTC)  # 23:30 local, the 24th
    _tariff(db, lab["laser"], now=datetime(2026, 10, 1, tzinfo=UTC),
            valid_from="2026-10-01T00:00:00Z", per_minute_cents=1)
    c = _charge(db, _session(ingest, lab["alice"], start, 5 * 3600))
    assert (c.minutes_billed, c.amount_cents) == (300, 300)


def test_resent_session_charges_once_and_late_end_updates_with_audit(db: Any, lab: Any,
                                                                    ingest: Any) -> None:
    _tariff(db, lab["laser"], valid_from="2026-11-01T00:00:00Z", per_minute_cents=10)
    alice = lab["alice"]
    sid = str(uuid.uuid4())
    start = datetime.now(UTC) - timedelta(hours=1)
    ingest.handle_batch([ev_in(started(sid, member=alice.id, ts=start))])
    # the node restarts without the session: the server closes it as lost (no duration yet)
    ingest.handle_batch([ev_in_status(status(ts=datetime.now(UTC)))])
    assert _charge(db, sid).amount_cents == 0
    end = ended(sid, start, 1200, 1000, member=alice.id)
    ingest.handle_batch([ev_in(end)])
    ingest.handle_batch([ev_in(end)])  # resent: a duplicate
    c = _charge(db, sid)
    assert (c.minutes_billed, c.amount_cents) == (20, 200)
    assert db.scalar(select(func.count(Charge.id))) == 1
    trail = db.scalars(select(AuditLog).where(AuditLog.action == "charge.recompute")).all()
    assert [t.details["amount_cents"] for t in trail] == [[0, 200]]
    assert s.billing.balance(db, alice.id)["charges_cents"] == 200


def ev_in_status(payload: bytes) -> Any:
    from server_helpers import incoming

    return incoming("fabpass/v1/lab/laser-1/status", payload)


def test_waiver_and_adjustment_survive_recomputation(db: Any, lab: Any, ingest: Any) -> None:
    _tariff(db, lab["laser"], valid_from="2026-11-01T00:00:00Z", per_minute_cents=10)
    sid = _session(ingest, lab["alice"], T0, 600)
    c = _charge(db, sid)
    billing.adjust_charge(db, c.id, waive=True, reason="machine jammed", actor="test")
    db.commit()
    ingest.handle_batch([ev_in(ended(sid, T0, 900, 900, member=lab["alice"].id))])  # corrected
    c = _charge(db, sid)
    assert (c.computed_cents, c.amount_cents, c.override) == (150, 0, "waived")
    billing.adjust_charge(db, c.id, amount_cents=50, reason="half price", actor="test")
    db.commit()
    assert billing.balance(db, lab["alice"].id)["charges_cents"] == 50
    with pytest.raises(Invalid) as e:
        billing.adjust_charge(db, c.id, waive=True, reason="", actor="test")
    assert "reason" in e.value.fields


def test_trainers_use_free(db: Any, lab: Any, ingest: Any) -> None:
    s.grant(db, lab["alice"].id, lab["laser"].id, None, "trainer", actor="cli")
    db.commit()
    _tariff(db, lab["laser"], now=datetime.now(UTC), per_minute_cents=10)
    c = _charge(db, _session(ingest, lab["alice"], datetime.now(UTC), 600))
    assert (c.amount_cents, c.free_reason) == (0, "trainer")


@pytest.mark.parametrize(("spec", "field"), [
    ({"per_minute_cents": -1}, "tariff.per_minute_cents"),
    ({"per_minute_cents": 1.5}, "tariff.per_minute_cents"),
    ({"round_minutes": 0}, "tariff.round_minutes"),
    ({"session_cents": "5"}, "tariff.session_cents"),
    ({"basis": "wall"}, "tariff.basis"),
    ({"categories": {"youth": {"minimum_cents": -5}}}, "tariff.categories.youth.minimum_cents"),
    ({"valid_from": "2026-10-31T22:59:00Z"}, "tariff.valid_from"),  # October (Paris) is closed
    ({"valid_from": "yesterday"}, "tariff.valid_from"),
    ({"price": 3}, "tariff.price"),
])
def test_bad_tariffs_name_the_field(db: Any, lab: Any, spec: dict[str, Any], field: str) -> None:
    with pytest.raises(Invalid) as e:
        billing.set_tariff(db, lab["laser"].id, spec, actor="test", now=T0)
    assert field in e.value.fields


@pytest.mark.parametrize("amount", [0, 1.5, "10", True, None])
def test_bad_topups(db: Any, lab: Any, amount: Any) -> None:
    with pytest.raises(Invalid) as e:
        billing.add_topup(db, lab["alice"].id, amount, "cash", actor="test")
    assert "amount_cents" in e.value.fields


def test_credit_ok_in_the_list_and_republish_on_crossing(db: Any, lab: Any, ingest: Any) -> None:
    laser, alice = lab["laser"], lab["alice"]
    s.grant(db, alice.id, laser.id, None, "user", actor="cli")
    db.commit()
    _tariff(db, laser, now=datetime.now(UTC), per_minute_cents=10, min_balance_cents=100)
    acl = compute_acl(db, laser.node, datetime.now(UTC))
    assert acl is not None and [b.credit_ok for b in acl.badges] == [False]
    assert acl.to_dict()["badges"][0]["credit_ok"] is False
    db.execute(AclDirty.__table__.delete())
    db.commit()
    billing.add_topup(db, alice.id, 500, "HelloAsso", "HA-42", actor="test")
    db.commit()
    assert db.scalar(select(func.count(AclDirty.id))) >= 1  # crossed 1.00 upwards
    acl = compute_acl(db, laser.node, datetime.now(UTC))
    assert acl is not None and "credit_ok" not in acl.to_dict()["badges"][0]
    db.execute(AclDirty.__table__.delete())
    db.commit()
    _session(ingest, alice, datetime.now(UTC) + timedelta(seconds=1), 45 * 60)  # 4.50
    db.expire_all()
    assert billing.balance(db, alice.id) == {"balance_cents": 50, "topups_cents": 500,
                                             "charges_cents": 450}
    assert db.scalar(select(func.count(AclDirty.id))) >= 1  # crossed downwards
    acl = compute_acl(db, laser.node, datetime.now(UTC))
    assert acl is not None and acl.badges[0].credit_ok is False


def test_statement_and_monthly_accounts_reconcile(db: Any, lab: Any, ingest: Any) -> None:
    from server.reports.billing import accounting, statement

    alice, laser, site = lab["alice"], lab["laser"], lab["site"]
    _tariff(db, laser, now=datetime(2026, 10, 1, tzinfo=UTC), valid_from="2026-10-01T00:00:00Z",
            per_minute_cents=10)
    billing.add_topup(db, alice.id, 2000, "card", "CB-1", actor="test",
                      at=datetime(2026, 10, 5, tzinfo=UTC))
    db.commit()
    _session(ingest, alice, datetime(2026, 10, 20, 9, tzinfo=UTC), 600)  # 1.00, October
    # 23:30 local on 30 November (UTC+1): still November for the Paris lab
    _session(ingest, alice, datetime(2026, 11, 30, 22, 30, tzinfo=UTC), 1200)  # 2.00
    billing.add_topup(db, alice.id, 500, "cash", None, actor="test",
                      at=datetime(2026, 11, 2, tzinfo=UTC))
    db.commit()
    nov_from, nov_to = datetime(2026, 10, 31, 23, tzinfo=UTC), datetime(2026, 11, 30, 23, tzinfo=UTC)
    st = statement(db, alice.id, nov_from, nov_to, "Europe/Paris")
    assert (st["opening_cents"], st["topups_cents"], st["charges_cents"]) == (1900, 500, 200)
    assert st["closing_cents"] == 2200 and st["reconciles"]
    assert sum(r["amount_cents"] for r in st["charges"]) == st["charges_cents"]
    nov = accounting(db, site, "2026-11")
    assert (nov["charges_cents"], nov["topups_cents"]) == (200, 500)
    charge_rows = [r for r in nov["rows"] if r["type"] == "charge"]
    assert [r["date"] for r in charge_rows] == ["2026-11-30 23:30"]  # local time
    assert sum(r["amount"] for r in charge_rows) * 100 == nov["charges_cents"]
    assert [r["amount"] * 100 for r in nov["rows"] if r["type"] == "balance"] == [2200]
    assert accounting(db, site, "2026-12")["charges_cents"] == 0
    oct_ = accounting(db, site, "2026-10")
    assert (oct_["charges_cents"], oct_["topups_cents"]) == (100, 2000)


def test_supervised_first_use_after_a_signoff_is_free(db: Any, lab: Any, ingest: Any) -> None:
    from server_helpers import event

    tom = s.create_member(db, "Tom Trainer", None, "T1", "lab", [], actor="cli")
    s.enrol_badge(db, tom.id, "04C0FFEE", actor="cli")
    s.grant(db, tom.id, lab["laser"].id, None, "trainer", actor="cli")
    db.commit()
    now = datetime.now(UTC)
    _tariff(db, lab["laser"], now=now, per_minute_cents=10)
    signed_at = now + timedelta(seconds=2)
    ingest.handle_batch([ev_in(event("training.signed", {"trainer_uid": "04C0FFEE",
                                                         "trainee_uid": "04A1B2C3"},
                                     ts=signed_at))])
    first = _session(ingest, lab["alice"], signed_at + timedelta(minutes=5), 600)
    later = _session(ingest, lab["alice"], signed_at + timedelta(hours=2), 600)
    assert (_charge(db, first).amount_cents, _charge(db, first).free_reason) == (0, "signoff")
    assert _charge(db, later).amount_cents == 100
