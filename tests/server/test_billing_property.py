"""Property: whatever mix of top-ups, sessions (from the real ingest), resends, corrections and
waivers arrives, a member's balance is exactly top-ups - charges, each session has one charge,
and each charge is the tariff's price of the session as last corrected (or the override)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import T0, ended, ev_in, started
from sqlalchemy import select

from server import services as s
from server.models import Charge, UsageSession
from server.services import billing
from server.services.tariffs import price

SPEC = {"per_minute_cents": 7, "round_minutes": 5, "session_cents": 30, "minimum_cents": 60,
        "categories": {"youth": {"per_minute_cents": 3}}}

step = st.one_of(
    st.tuples(st.just("topup"), st.integers(-5000, 20000).filter(lambda n: n != 0)),
    st.tuples(st.just("session"), st.floats(0, 20000, allow_nan=False)),
    st.tuples(st.just("resend"), st.integers(0, 50)),
    st.tuples(st.just("correct"), st.integers(0, 50), st.floats(0, 20000, allow_nan=False)),
    st.tuples(st.just("waive"), st.integers(0, 50)),
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(step, max_size=12), tags=st.sampled_from([[], ["youth"]]))
def test_balance_is_topups_minus_charges(db: Any, lab: Any, ingest: Any,
                                         steps: list[tuple[Any, ...]], tags: list[str]) -> None:
    laser = lab["laser"]
    if billing.current_tariff(db, laser.id, T0) is None:
        billing.set_tariff(db, laser.id, {**SPEC, "valid_from": "2026-11-01T00:00:00Z"},
                           actor="test", now=T0)
    member = s.create_member(db, f"M {uuid.uuid4().hex[:6]}", None, None, "lab", tags,
                             actor="cli")
    db.commit()
    sent: list[Any] = []  # the last session.ended sent per session
    topups = 0
    for i, op in enumerate(steps):
        kind = op[0]
        if kind == "topup":
            billing.add_topup(db, member.id, op[1], "cash", actor="test")
            db.commit()
            topups += op[1]
        elif kind == "session":
            sid, start = str(uuid.uuid4()), T0 + timedelta(hours=i)
            ev = ended(sid, start, round(op[1], 3), 0.0, member=member.id)
            ingest.handle_batch([ev_in(started(sid, member=member.id, ts=start)), ev_in(ev)])
            sent.append((sid, start))
        elif sent and kind == "resend":
            sid, start = sent[op[1] % len(sent)]
            rows = db.scalars(select(UsageSession).where(UsageSession.session_uuid == sid))
            row = rows.one()
            db.expire_all()
            ingest.handle_batch([ev_in(ended(sid, start, row.duration_s or 0.0, 0.0,
                                             member=member.id))])
        elif sent and kind == "correct":  # a corrected (late) session.ended: a new event id
            sid, start = sent[op[1] % len(sent)]
            ingest.handle_batch([ev_in(ended(sid, start, round(op[2], 3), 0.0,
                                             member=member.id))])
        elif sent and kind == "waive":
            sid, _ = sent[op[1] % len(sent)]
            db.expire_all()
            charge = db.scalars(select(Charge).join(UsageSession)
                                .where(UsageSession.session_uuid == sid)).one()
            billing.adjust_charge(db, charge.id, waive=True, reason="property", actor="test")
            db.commit()
    db.expire_all()
    charges = list(db.scalars(select(Charge).where(Charge.member_id == member.id)))
    assert len(charges) == len(sent) == len({c.session_id for c in charges})
    for c in charges:
        expected = 0 if c.override == "waived" else price(SPEC, tags, c.session.duration_s or 0).cents
        assert c.amount_cents == expected
        assert c.computed_cents == price(SPEC, tags, c.session.duration_s or 0).cents
    total = sum(c.amount_cents for c in charges)
    assert billing.balance(db, member.id) == {"balance_cents": topups - total,
                                              "topups_cents": topups, "charges_cents": total}
