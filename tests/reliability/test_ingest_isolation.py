"""Per-message isolation of the live ingest (issue 13, item 1): no message can stall a batch.

Real Mosquitto, real SQLite and PostgreSQL. A payload nested thousands deep used to make the
ingest read the rejected id with a recursive decoder: `RecursionError` escaped the per-message
handling, the batch was taken for a database error and retried forever, for every node, and
again after a restart. Here every stage of the handler is made to raise in turn for the
messages of one node; the other node's messages of the same batches and of later batches must
all be stored, and every message acked (stored, dead-lettered or quarantined as `poison`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from ingest_live import (
    GOOD,
    OTHER,
    RawNode,
    dead_letters,
    encode,
    event,
    every_type,
    live_ingest,
    nested,
    session_events,
    setup_lab,
    status,
    stored_ids,
    wait_until,
)
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

import protocol
from server.messaging import handlers, ingest
from server.models import UsageSession

pytestmark = pytest.mark.broker

DEPTH = 5000


@pytest.fixture()
def lab_db(db: Session) -> Session:
    setup_lab(db, GOOD, OTHER)
    return db


def _deep_payloads() -> list[tuple[str, str, bytes, str | None]]:
    """(name, kind, payload, event id) nested DEPTH deep, at the top and inside `data`."""
    eid_top, eid_data = str(uuid.uuid4()), str(uuid.uuid4())
    ev = event("door.opened", {}, node=GOOD, id=eid_top)
    top = encode(ev)[:-1] + b', "x": ' + nested(DEPTH).encode() + b"}"
    ev2 = event("door.opened", {}, node=GOOD, id=eid_data)
    inside = encode(ev2).replace(b'"data": {}', b'"data": {"x": ' + nested(DEPTH).encode() + b"}")
    st = status(GOOD)
    st_top = encode(st)[:-1] + b', "x": ' + nested(DEPTH).encode() + b"}"
    st_inside = encode(st).replace(b'"session": null', b'"session": {"x": '
                                   + nested(DEPTH).encode() + b"}")
    return [("event-top", "event", top, eid_top), ("event-data", "event", inside, eid_data),
            ("status-top", "status", st_top, None), ("status-data", "status", st_inside, None)]


def test_deep_payloads_do_not_stall_the_ingest(engine: Engine, lab_db: Session,
                                               mosquitto: Any) -> None:
    node = RawNode(mosquitto.url)
    try:
        with live_ingest(engine, mosquitto.url) as core:
            before = session_events(GOOD)
            for ev in before:
                node.publish(GOOD, "event", encode(ev))
            deep = _deep_payloads()
            for _name, kind, payload, _eid in deep:
                node.publish(GOOD, kind, payload)
            after = session_events(GOOD)
            for ev in after:
                node.publish(GOOD, "event", encode(ev))
            good = {e["id"] for e in before + after}
            deep_ids = {eid for *_, eid in deep if eid}
            accepted, rejected = node.acked(good | deep_ids, timeout=10)
            assert good <= accepted, (good - accepted, accepted, rejected)
            assert deep_ids <= rejected, (deep_ids, rejected, deep_ids & accepted)
            assert stored_ids(engine, good) == good
            # only this node's: the session broker may still hold other tests' retained
            # statuses, which the ingest rightly dead-letters as "node not registered"
            def ours() -> list[str]:
                return [d.reason for d in dead_letters(engine) if f"/{GOOD}/" in d.topic]

            assert wait_until(lambda: len(ours()) >= len(deep), 5)
            reasons = ours()
            assert len(reasons) == len(deep)
            assert all("deeper than" in r for r in reasons), reasons
            assert core.ingest is not None and core.ingest.stats.db_errors == 0
    finally:
        node.close()


class Boom(RuntimeError):
    """The injected failure."""


def _is_other(value: Any, depth: int = 0) -> bool:
    """Does this argument belong to the poisoned node (OTHER)?"""
    if depth > 3:
        return False
    if isinstance(value, str):
        return f"/{OTHER}/" in value or value == OTHER
    if isinstance(value, bytes):
        return f'"{OTHER}"'.encode() in value
    if isinstance(value, list | tuple | set):
        return any(_is_other(v, depth + 1) for v in value)
    for attr in ("topic", "node", "slug", "payload"):
        inner = getattr(value, attr, None)
        if inner is not None and not callable(inner) and _is_other(inner, depth + 1):
            return True
    return False


def _poisoned(func: Callable[..., Any], exc: Callable[[], BaseException]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if any(_is_other(a) for a in (*args, *kwargs.values())):
            raise exc()
        return func(*args, **kwargs)
    return wrapper


# (where, attribute): every stage a message goes through, batch-wide ones included
STAGES: list[tuple[Any, str]] = [
    (ingest.Ingest, "_parse_topic"), (protocol.Topics, "parse"),
    (ingest.Ingest, "_preload_nodes"), (ingest.Ingest, "_registered_node"),
    (ingest.Ingest, "_check_event"), (ingest.Ingest, "_event"), (ingest.Ingest, "_dispatch"),
    (ingest.Ingest, "_insert_events"), (ingest.Ingest, "_preload_sessions"),
    (ingest.Ingest, "_preload_members"), (ingest.Ingest, "_status"),
    (ingest.Ingest, "_close_lost_sessions"), (ingest.Ingest, "_dead_letter"),
    (ingest.Ingest, "_send_acks"), (ingest, "peek_id"),
    (handlers.EventHandlers, "_session_row"), (handlers.EventHandlers, "_member_id"),
    (handlers.members, "record_unknown_badge"), (handlers.trainings, "sign_off"),
    *((handlers.HANDLERS, name) for name in handlers.HANDLERS),
]
EXCEPTIONS: dict[str, Callable[[], BaseException]] = {
    "runtime": lambda: Boom("injected"),
    "recursion": lambda: RecursionError("maximum recursion depth exceeded"),
    "operational": lambda: OperationalError("SELECT 1", {}, Exception("injected lock")),
}


def _stage_id(stage: tuple[Any, str]) -> str:
    where, name = stage
    return name if isinstance(where, dict) else f"{getattr(where, '__name__', where)}.{name}"


def _cases() -> list[Any]:
    cases = [pytest.param(stage, "runtime", id=f"{_stage_id(stage)}-runtime") for stage in STAGES]
    for name in ("_check_event", "session.ended", "_insert_events", "_dead_letter"):
        stage = next(st for st in STAGES if st[1] == name)
        cases += [pytest.param(stage, kind, id=f"{_stage_id(stage)}-{kind}")
                  for kind in ("recursion", "operational")]
    return cases


@pytest.mark.parametrize(("stage", "kind"), _cases())
def test_an_exception_in_any_stage_never_stalls_a_batch(
        engine: Engine, lab_db: Session, mosquitto: Any, monkeypatch: pytest.MonkeyPatch,
        stage: tuple[Any, str], kind: str) -> None:
    where, name = stage
    original = where[name] if isinstance(where, dict) else getattr(where, name)
    if isinstance(where, dict):
        monkeypatch.setitem(where, name, _poisoned(original, EXCEPTIONS[kind]))
    elif isinstance(where.__dict__.get(name), staticmethod | classmethod):
        raise AssertionError("wrap the function itself")
    else:
        monkeypatch.setattr(where, name, _poisoned(original, EXCEPTIONS[kind]))
    node = RawNode(mosquitto.url)
    try:
        with live_ingest(engine, mosquitto.url) as core:
            good1, bad, good2 = every_type(GOOD), every_type(OTHER), every_type(GOOD)
            for good_ev, bad_ev in zip(good1, bad, strict=True):  # interleaved: one batch
                node.publish(GOOD, "event", encode(good_ev))
                node.publish(OTHER, "event", encode(bad_ev))
            node.publish(OTHER, "status", encode(status(OTHER)))
            node.publish(GOOD, "status", encode(status(GOOD)))
            for ev in good2:  # later batches
                node.publish(GOOD, "event", encode(ev))
            good = {e["id"] for e in good1 + good2}
            bad_ids = {e["id"] for e in bad}
            # the node hears of its messages unless the failing stage is the one sending acks,
            # or reading topics (then it cannot be addressed); they are settled all the same
            addressable = name not in ("_send_acks", "parse")
            accepted, rejected = node.acked(good | bad_ids if addressable else good, timeout=20)
            assert good <= accepted, f"{len(good - accepted)} valid events never acked"
            assert stored_ids(engine, good) == good
            assert core.ingest is not None
            if addressable:
                assert bad_ids <= accepted | rejected

            def unaccounted() -> set[str]:
                dead = {d.event_id for d in dead_letters(engine)}
                return bad_ids - stored_ids(engine, bad_ids) - dead

            assert wait_until(lambda: not unaccounted(), 5), unaccounted()
            # nothing left in hand: the queue is drained, no batch is being retried
            assert wait_until(lambda: core.ingest is not None and core.ingest.queue.empty()
                              and not core.ingest.retrying, 5)
            with Session(engine) as check:
                sessions = list(check.scalars(select(UsageSession.session_uuid)))
            assert {good1[0]["data"]["session"], good2[0]["data"]["session"]} <= set(sessions)
    finally:
        node.close()
