"""Structure-aware fuzzing of the live ingest (issue 13): real Mosquitto, real databases.

Seeded (FUZZ_SEED) and bounded (FUZZ_SECONDS of generation, then a bounded wait). Each hostile
payload is one of: nested far deeper than the protocol allows (at the top, inside `data`, on
events and statuses), huge (up to the broker's `message_size_limit`, which the test broker sets),
numeric extremes (1e308, -0, 2**64, NaN and Infinity in several spellings), time extremes
(year 1 and 9999, offsets, leap seconds, 1970), NUL and lone surrogates, duplicate keys, a wrong
type at every field, other nodes' ids and other nodes' sessions. Valid events are interleaved.

Invariant: every message is stored or dead-lettered with a reason, and acknowledged (nothing is
left in hand, no batch is being retried); every valid event is stored exactly once.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from ingest_live import (
    GOOD,
    OTHER,
    RawNode,
    dead_letters,
    encode,
    every_type,
    live_ingest,
    nested,
    session_events,
    setup_lab,
    status,
    stored_ids,
    wait_until,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fabpass.broker import MosquittoProcess
from server.db import make_sessionmaker
from server.models import Event

pytestmark = pytest.mark.broker
log = logging.getLogger(__name__)

FUZZ_SEED = 20261203
FUZZ_SECONDS = 6.0
MESSAGE_SIZE_LIMIT = 256 * 1024  # the broker's limit in this test (mosquitto message_size_limit)

NUMBERS = [b"1e308", b"-1e308", b"-0", b"-0.0", b"18446744073709551616", b"1e400", b"NaN",
           b"nan", b"Infinity", b"-Infinity", b"inf", b"1E999", b"0.0000001", b"9" * 400]
TIMES = ["0001-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z", "1970-01-01T00:00:00.000Z",
         "2016-12-31T23:59:60.000Z", "2026-11-22T10:00:00.000+23:59", "2026-11-22T10:00:00-00:00",
         "2026-02-30T10:00:00.000Z", "2026-11-22 10:00:00Z", "2019-12-31T23:59:59.999Z"]
TEXTS = ["\u0000", "a\u0000b", "\ud800", "\udfff", "x" * 70, "", "é" * 10]
WRONG = [None, True, 0, -1, 2**63, 1.5, "", "x", [], {}, [1, 2], {"a": 1}]


def _hostile(rng: random.Random, victim_sid: str) -> tuple[str, str, bytes, str]:
    """(node, kind, payload, label): one hostile message."""
    kind = rng.choice(["deep", "huge", "number", "time", "text", "dupkey", "wrongtype",
                       "identity", "session"])
    ev = rng.choice(every_type(GOOD))
    if kind == "deep":
        depth = rng.choice([33, 100, 5000, 50000])
        where = rng.choice(["top", "data", "status"])
        if where == "status":
            body = encode(status(GOOD))[:-1] + b', "x": ' + nested(depth).encode() + b"}"
            return GOOD, "status", body, f"deep-{depth}"
        inner = nested(depth).encode()
        body = encode(ev)
        body = (body[:-1] + b', "x": ' + inner + b"}" if where == "top"
                else body.replace(b'"data": {', b'"data": {"x": ' + inner + b", ", 1))
        return GOOD, "event", body, f"deep-{depth}"
    if kind == "huge":
        size = rng.choice([65 * 1024, 200 * 1024, MESSAGE_SIZE_LIMIT - 1024])
        ev["data"]["pad"] = "x" * size
        return GOOD, rng.choice(["event", "status"]), encode(ev), "huge"
    if kind == "number":
        body = encode(ev)
        for key in (b'"seq": ', b'"duration_s": ', b'"active_s": ', b'"elapsed_s": ',
                    b'"member": '):
            if key in body and rng.random() < 0.7:
                start = body.index(key) + len(key)
                end = min(i for i in (body.find(b",", start), body.find(b"}", start)) if i > 0)
                body = body[:start] + rng.choice(NUMBERS) + body[end:]
        return GOOD, "event", body, "number"
    if kind == "time":
        target = rng.choice(["ts", "started", "ended"])
        if target == "ts" or target not in ev["data"]:
            ev["ts"] = rng.choice(TIMES)
        else:
            ev["data"][target] = rng.choice(TIMES)
        return GOOD, "event", encode(ev), "time"
    if kind == "text":
        key = rng.choice(["type", "node", "uid", "reason", "session"])
        text = rng.choice(TEXTS)
        if key in ("type", "node"):
            ev[key] = text
        else:
            ev["data"][key] = text
        return GOOD, "event", json.dumps(ev).encode("utf-8", "surrogatepass"), "text"
    if kind == "dupkey":
        body = encode(ev)
        dup = rng.choice([b'"id": "' + str(uuid.uuid4()).encode() + b'"', b'"node": "poison-1"',
                          b'"v": 2', b'"data": 5', b'"type": "session.ended"'])
        return GOOD, "event", body[:-1] + b", " + dup + b"}", "dupkey"
    if kind == "wrongtype":
        keys = [("top", k) for k in ev] + [("data", k) for k in ev["data"]]
        where, key = rng.choice(keys)
        (ev if where == "top" else ev["data"])[key] = rng.choice(WRONG)
        return GOOD, "event", encode(ev), "wrongtype"
    if kind == "identity":  # another node's name in the payload, on our topic
        ev["node"] = OTHER
        return GOOD, "event", encode(ev), "identity"
    # another node's session: OTHER ends or beats the session GOOD holds open
    forged = session_events(OTHER, duration=rng.choice([60.0, 6 * 86400.0]))
    forged_ev = rng.choice(forged[1:])
    forged_ev["data"]["session"] = victim_sid
    return OTHER, "event", encode(forged_ev), "session"


@pytest.mark.timeout(240)
def test_live_ingest_fuzz(engine: Any, db: Session, db_url: str) -> None:
    setup_lab(db, GOOD, OTHER)
    broker = MosquittoProcess(extra_config=f"message_size_limit {MESSAGE_SIZE_LIMIT}")
    broker.start()
    rng = random.Random(FUZZ_SEED)
    node = RawNode(broker.url)
    counts: Counter[str] = Counter()
    max_bytes = max_depth = 0
    t0 = time.monotonic()
    try:
        with live_ingest(engine, broker.url) as core:
            victim = session_events(GOOD, duration=60.0)
            valid: list[dict[str, Any]] = [victim[0]]
            node.publish(GOOD, "event", encode(victim[0]))
            deadline = time.monotonic() + FUZZ_SECONDS
            while time.monotonic() < deadline and counts.total() < 3000:
                if rng.random() < 0.3:
                    ev = rng.choice(every_type(GOOD))
                    valid.append(ev)
                    node.publish(GOOD, "event", encode(ev))
                    counts["valid"] += 1
                    continue
                who, kind, body, label = _hostile(rng, victim[0]["data"]["session"])
                counts[label.split("-")[0]] += 1
                max_bytes = max(max_bytes, len(body))
                if label.startswith("deep"):
                    max_depth = max(max_depth, int(label.split("-")[1]))
                node.publish(who, kind, body)
            for ev in valid[:5]:  # resent: stored once, acked again
                node.publish(GOOD, "event", encode(ev))
            valid_ids = {e["id"] for e in valid}
            accepted, _rejected = node.acked(valid_ids, timeout=60)
            assert valid_ids <= accepted, f"{len(valid_ids - accepted)} valid events not acked"
            assert core.ingest is not None
            ingest = core.ingest
            assert wait_until(lambda: ingest.queue.empty() and not ingest.retrying, 30)
            assert stored_ids(engine, valid_ids) == valid_ids
            stats = ingest.stats.as_dict()
            seconds = time.monotonic() - t0
    finally:
        node.close()
        broker.cleanup()
    with make_sessionmaker(engine)() as check:
        dup = check.scalar(select(func.count()).select_from(Event).where(
            Event.event_id.in_(sorted(valid_ids))))
        assert dup == len(valid_ids)  # exactly once
    dead = dead_letters(engine)
    assert all(d.reason for d in dead)
    assert not [d.reason for d in dead if d.reason.startswith(("internal error", "poison"))]
    hostile = counts.total() - counts["valid"]
    # every hostile message is settled: stored (a valid oddity), dead-lettered or a status
    assert stats["received"] >= counts.total()
    assert stats["stored"] + stats["dead_letters"] + stats["statuses"] >= hostile
    assert stats["db_errors"] == 0
    log.warning("live fuzz on %s: seed %d, %d messages %s, max %d bytes, max depth %d, "
                "%d dead letters, %.1f s", db_url.split(":")[0], FUZZ_SEED, counts.total(),
                dict(counts), max_bytes, max_depth, len(dead), seconds)
