"""Ingest survives garbage: generated payloads never raise; each is stored or dead-lettered."""

from __future__ import annotations

import json
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import ev_in, event, incoming
from sqlalchemy import func, select

from server.models import DeadLetter, Event

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8,
)
FIELDS = ["v", "id", "node", "boot", "seq", "ts", "type", "data"]


@st.composite
def mutated_event(draw: st.DrawFn) -> bytes:
    """A valid event with some fields replaced, removed or added."""
    base = event("session.heartbeat", {"session": str(uuid.uuid4()), "uid": "04A1B2C3",
                                       "member": None, "elapsed_s": 1, "active_s": 0}).to_dict()
    for key in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        if draw(st.booleans()):
            base.pop(key, None)
        else:
            base[key] = draw(json_values)
    if draw(st.booleans()):
        base["data"] = draw(st.dictionaries(st.sampled_from(
            ["session", "uid", "member", "elapsed_s", "active_s", "reason", "trainer_uid",
             "trainee_uid", "started", "ended", "duration_s"]), json_values, max_size=6))
        base["type"] = draw(st.sampled_from(["session.started", "session.heartbeat",
                                             "session.ended", "badge.denied",
                                             "training.signed", "x.y"]))
    return json.dumps(base).encode()


payloads = mutated_event() | st.binary(max_size=60) | json_values.map(
    lambda v: json.dumps(v).encode())


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(payloads, min_size=1, max_size=8))
def test_generated_payloads_never_escape(db, lab, ingest, batch: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    db.rollback()
    before_events = db.scalar(select(func.count()).select_from(Event))
    before_dead = db.scalar(select(func.count()).select_from(DeadLetter))
    items = [incoming("fabpass/v1/lab/laser-1/event", p) for p in batch]
    items.append(ev_in(event("badge.denied", {"uid": "04A1B2C3", "reason": "expired"})))
    outcomes = ingest.handle_batch(items)  # must not raise
    assert outcomes[-1].accepted
    db.rollback()
    stored = db.scalar(select(func.count()).select_from(Event)) - before_events
    accepted = [p for p, o in zip(batch, outcomes, strict=False) if o.accepted]
    assert stored <= len(set(accepted)) + 1
    dead_payloads = set(db.scalars(select(DeadLetter.payload)))
    for payload, outcome in zip(batch, outcomes, strict=False):
        if not outcome.accepted:  # every rejected payload is in the dead-letter table
            assert payload in dead_payloads or outcome.event_id is not None
    assert db.scalar(select(func.count()).select_from(DeadLetter)) - before_dead <= len(batch)
