"""Structure-aware fuzzing of every v1 decoder (issue 13): seeded, bounded in count and time.

The invariant, checked on every input: **decode either returns a valid message or raises
ProtocolError, nothing else; a valid message round-trips** (after one normalisation, since
times travel to the millisecond: `decode(encode(m))` is a fixed point and encodes to the same
bytes); and for events, **the msgspec fast path accepts only what the reference decoder
accepts, with an equal result**.

The issue 8 fuzzing passed 10,000 well-formed, shallow payloads and missed a payload nested a
few thousand deep. So the generators here aim at the edges, not at a count: nesting up to
200,000 levels at the top and inside any field, payloads up to 16 MiB (the access list bound)
and just over each bound, numbers at and past a double's and a 64-bit integer's range, every
spelling of NaN/Infinity, text with NUL, lone surrogates, quotes, backslashes and brackets,
duplicate keys, times at year 1 and 9999 with odd offsets and leap seconds, and wrong types at
every field. Hypothesis runs derandomized (a fixed seed), so a run is reproducible;
`test_corpus_figures` checks that the extremes were really reached and prints the figures.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import (
    MAX_ACL_BYTES,
    MAX_DEPTH,
    MAX_EVENT_BYTES,
    AccessList,
    Ack,
    Command,
    Event,
    ProtocolError,
    Status,
    peek_id,
)
from protocol.messages import _FAST

DECODERS: dict[str, Callable[[Any], Any]] = {
    "event": Event.decode, "status": Status.decode, "acl": AccessList.decode,
    "ack": Ack.decode, "cmd": Command.decode}
SID = "8d3f2a64-1c1e-4d55-9a8e-2b6f0c3b9d11"

VALID: dict[str, dict[str, Any]] = {
    "event": {"v": 1, "id": SID, "node": "laser-1",
              "boot": "0b5b1f0e-7e0a-4b8e-8d0c-0e5d1f2a3b4c", "seq": 3,
              "ts": "2026-11-22T19:20:50.123Z", "type": "session.ended",
              "data": {"session": SID, "uid": "04A1B2C3",
                       "member": 12, "started": "2026-11-22T19:20:50.123Z",
                       "ended": "2026-11-22T19:21:50.123Z", "duration_s": 60, "active_s": 1.5,
                       "reason": "badge_out"}},
    "heartbeat": {"v": 1, "id": SID, "node": "laser-1",
                  "boot": "0b5b1f0e-7e0a-4b8e-8d0c-0e5d1f2a3b4c", "seq": 4,
                  "ts": "2026-11-22T19:20:50.123Z", "type": "session.heartbeat",
                  "data": {"session": SID, "uid": "04A1B2C3D4E5F6", "member": None,
                           "elapsed_s": 60.0, "active_s": 0}},
    "denied": {"v": 1, "id": SID, "node": "laser-1",
               "boot": "0b5b1f0e-7e0a-4b8e-8d0c-0e5d1f2a3b4c", "seq": 5,
               "ts": "2026-11-22T19:20:50.123Z", "type": "badge.denied",
               "data": {"uid": "04A1B2C3", "reason": "booked",
                        "until": "2026-11-22T21:00:00.000Z"}},
    "status": {"v": 1, "node": "laser-1", "online": True, "state": "in_use", "relay": True,
               "warning": False, "session": {"id": SID, "uid": "04A1B2C3", "member": 1,
                                             "started": "2026-11-22T19:20:50.123Z"},
               "acl_version": 4, "clock_ok": True, "last_cmd": None, "software": "0.1.0",
               "ts": "2026-11-22T19:20:50.123Z"},
    "acl": {"v": 1, "version": 5, "site": "lab", "node": "laser-1", "machine": "laser-1",
            "issued": "2026-11-22T19:20:50.123Z", "valid_until": "2026-11-29T19:20:50.123Z",
            "locked": False, "policy": {"mode": "tap", "grace_s": 10, "booking": "optional"},
            "badges": [{"uid": "04A1B2C3", "member": 12, "role": "user", "until": None,
                        "credit_ok": False}],
            "bookings": [{"member": 12, "start": "2026-11-22T19:00:00Z",
                          "end": "2026-11-22T20:00:00Z"}]},
    "ack": {"v": 1, "ids": ["a"], "rejected": []},
    "cmd": {"v": 1, "id": SID, "ts": "2026-11-22T19:20:50.123Z", "cmd": "stop"},
}
DECODER_OF = {"heartbeat": "event", "denied": "event"}

# What the corpus reached: inputs per generator, deepest nesting, largest payload, time.
FIGURES: Counter[str] = Counter()
EXTREMES = {"depth": 0, "bytes": 0, "seconds": 0.0}


def check_invariant(kind: str, payload: Any) -> None:
    """The invariant of this file, for one input to one decoder."""
    decode = DECODERS[kind]
    if isinstance(payload, bytes | str):
        raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
        EXTREMES["bytes"] = max(EXTREMES["bytes"], len(raw))
    try:
        msg = decode(payload)
    except ProtocolError:
        msg = None
    if kind == "event":
        fast = _FAST.decode(payload)
        if fast is not None:
            reference = tuple(vars(Event.decode_reference(payload)).values())
            assert msg is not None and fast[:7] == reference[:7]
            # the JSON text kept for storage says exactly what `data` is, with no escape
            assert fast[7] is None or (json.loads(fast[7]) == fast[6] and "\\" not in fast[7])
        peek_id(payload)  # never raises: an exception here fails the test
    if msg is not None:
        once = decode(msg.encode())
        assert decode(once.encode()) == once and once.encode() == msg.encode()


def _timed(name: str, kind: str, payload: Any) -> None:
    start = time.perf_counter()
    check_invariant(kind, payload)
    EXTREMES["seconds"] += time.perf_counter() - start
    FIGURES[name] += 1


def _settings(n: int) -> settings:
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


# ---------------------------------------------------------------- value generators

NAN_SPELLINGS = [b"NaN", b"-NaN", b"nan", b"Infinity", b"-Infinity", b"inf", b"-inf", b"Inf",
                 b"1e400", b"-1e400", b"1E999", b"NaN1", b"0x10", b"+1", b"01", b".5", b"1."]
TIMES = ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59.999Z",
         "9999-12-31T23:59:59-00:01", "2016-12-31T23:59:60Z", "2026-11-22T10:00:00+23:59",
         "2026-11-22T10:00:00-23:59", "2026-11-22T10:00:00+24:00", "2026-02-29T00:00:00Z",
         "2028-02-29T00:00:00Z", "2026-11-22t10:00:00z", "2026-11-22 10:00:00Z",
         "2026-11-22T10:00:00.123456789Z", "2026-11-22T10:00:00Z\n", "2026-11-22T10:00:00",
         "٢٠٢٦-11-22T10:00:00Z", "2026-11-22T10:00:00.Z"]
texts = st.text(alphabet=st.characters(codec=None), max_size=40) | st.sampled_from(
    ["\x00", "a\x00b", "\ud800", "x\udfff", '"', "\\", "\\u0000", "[[[[", "]]]}", "{\"id\":",
     "laser-1\n", "04A1B2C3\n", "04a1b2c3", SID.upper(), "{" + SID + "}", "", " " * 65,
     "é" * 64, "é" * 65])
numbers = st.sampled_from([0, -0.0, 1e308, -1e308, 5e-324, 2**63 - 1, 2**63, 2**64 - 1, 2**64,
                           -(2**63), -(2**64), 10**30, 10**400, 1.5, -1]) | st.integers() | \
    st.floats(allow_nan=True, allow_infinity=True)
leaves = st.none() | st.booleans() | numbers | texts | st.sampled_from(TIMES)
json_values = st.recursive(
    leaves, lambda c: st.lists(c, max_size=4) | st.dictionaries(texts, c, max_size=4),
    max_leaves=12)


def _dumps(obj: Any) -> bytes:
    """json.dumps that also writes NaN/inf and lone surrogates (the decoder must refuse them)."""
    return json.dumps(obj, ensure_ascii=True).encode()


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        out.append(prefix + (k,))
        out.extend(_paths(v, prefix + (k,)))
    return out


def _replace(msg: Any, path: tuple[Any, ...], value: Any) -> None:
    target = msg
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


MARK = "\x01SPLICE\x01"


# ---------------------------------------------------------------- generators


@_settings(1500)
@given(st.binary(max_size=400) | json_values.map(_dumps), st.sampled_from(sorted(DECODERS)))
def test_arbitrary_payloads(payload: bytes, kind: str) -> None:
    _timed("arbitrary bytes/JSON", kind, payload)


@_settings(3000)
@given(st.data())
def test_near_valid_with_a_wrong_or_extreme_value_at_any_field(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(VALID)))
    msg = json.loads(json.dumps(VALID[name]))
    path = data.draw(st.sampled_from(_paths(msg)))
    action = data.draw(st.sampled_from(["replace", "replace", "delete", "duplicate"]))
    if action == "replace":
        _replace(msg, path, data.draw(json_values))
        payload = _dumps(msg)
    elif action == "delete":
        target = msg
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        payload = _dumps(msg)
    else:  # the same key twice: the last one wins, and the decoder must hold to that
        payload = _dumps(msg)
        if isinstance(path[-1], str):
            key = json.dumps(path[-1]).encode() + b": "
            payload = payload.replace(key, key + _dumps(data.draw(json_values)) + b", " + key, 1)
    _timed("near-valid, one field wrong", DECODER_OF.get(name, name), payload)


@_settings(400)
@given(st.data())
def test_raw_number_spellings_at_any_field(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(VALID)))
    msg = json.loads(json.dumps(VALID[name]))
    _replace(msg, data.draw(st.sampled_from(_paths(msg))), MARK)
    spelling = data.draw(st.sampled_from(NAN_SPELLINGS))
    payload = _dumps(msg).replace(json.dumps(MARK).encode(), spelling)
    _timed("number spellings (NaN, Infinity, 1e400, ...)", DECODER_OF.get(name, name), payload)


@_settings(300)
@given(st.data())
def test_deep_nesting_at_the_top_or_at_any_field(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(VALID)))
    depth = data.draw(st.sampled_from([MAX_DEPTH - 3, MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH,
                                       MAX_DEPTH + 1, 1000, 5000]) | st.integers(2, 200_000))
    opener = data.draw(st.sampled_from([b"[", b'{"a":', b'[{"id":"x","b":']))
    closer = {b"[": b"]", b'{"a":': b"}", b'[{"id":"x","b":': b"}]"}[opener]
    deep = opener * depth + b"1" + closer * depth
    EXTREMES["depth"] = max(EXTREMES["depth"], depth)
    if data.draw(st.booleans()):
        payload = deep
    else:
        msg = json.loads(json.dumps(VALID[name]))
        _replace(msg, data.draw(st.sampled_from(_paths(msg))), MARK)
        payload = _dumps(msg).replace(json.dumps(MARK).encode(), deep)
    _timed("deep nesting", DECODER_OF.get(name, name), payload)


@_settings(24)
@given(st.data())
def test_huge_payloads_around_each_bound(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(["event", "acl", "status"]))
    bound = MAX_ACL_BYTES if name == "acl" else MAX_EVENT_BYTES
    target = data.draw(st.sampled_from([bound - 1, bound, bound + 1, 2 * bound, bound // 3]))
    msg = json.loads(json.dumps(VALID[name]))
    if name == "acl" and data.draw(st.booleans()):  # many real badges rather than one pad
        entry = msg["badges"][0]
        msg["badges"] = [dict(entry, member=i) for i in range(target // 90)]
    payload = _dumps(msg)
    pad = max(0, target - len(payload) - 12)
    payload = payload[:-1] + b', "pad": "' + b"x" * pad + b'"}'
    _timed("huge payloads", name, payload)


@_settings(600)
@given(json_values, st.sampled_from(sorted(VALID)))
def test_python_objects_go_through_the_same_bounds(value: Any, name: str) -> None:
    """Decoders also take a dict (a node's stored event): NaN, NUL, surrogates, depth."""
    msg = json.loads(json.dumps(VALID[name]))
    msg["extra"] = value
    _timed("dict inputs", DECODER_OF.get(name, name), msg)


def test_valid_samples_decode() -> None:
    for name, msg in VALID.items():
        DECODERS[DECODER_OF.get(name, name)](json.dumps(msg).encode())
    assert _FAST.decode(json.dumps(VALID["event"]).encode()) is not None  # the fast path runs


def test_corpus_figures() -> None:
    """Runs last in this file: the corpus really reached the extremes it claims."""
    if sum(FIGURES.values()) < 5000:  # run alone (-k): nothing to check
        return
    assert EXTREMES["depth"] >= 100_000
    assert EXTREMES["bytes"] >= MAX_ACL_BYTES
    print(f"\nfuzz corpus: {sum(FIGURES.values())} inputs in {EXTREMES['seconds']:.1f} s, "
          f"deepest {EXTREMES['depth']} levels, largest {EXTREMES['bytes']} bytes")
    for name, count in sorted(FIGURES.items()):
        print(f"  {count:6d} {name}")
