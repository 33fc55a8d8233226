"""Decoding never raises anything but ProtocolError (issue 13, items 1 and 6), and the
contract's section 6 additions to the wire format (bookings, paid use, actuators)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from protocol import (
    MAX_DEPTH,
    MAX_EVENT_BYTES,
    AccessList,
    Ack,
    BadgeEntry,
    Booking,
    Command,
    Event,
    ProtocolError,
    Status,
    parse_ts,
    peek_id,
)
from protocol.messages import peek_id as messages_peek_id

T0 = datetime(2026, 11, 22, 19, 20, 50, 123000, tzinfo=UTC)
SID = "8d3f2a64-1c1e-4d55-9a8e-2b6f0c3b9d11"
BOOT = "0b5b1f0e-7e0a-4b8e-8d0c-0e5d1f2a3b4c"
DECODERS = (Event.decode, Status.decode, AccessList.decode, Ack.decode, Command.decode)


def _event(etype: str = "door.opened", data: Any = None, **envelope: Any) -> dict[str, Any]:
    obj = {"v": 1, "id": SID, "node": "laser-1", "boot": BOOT, "seq": 1,
           "ts": "2026-11-22T19:20:50.123Z", "type": etype, "data": {} if data is None else data}
    obj.update(envelope)
    return obj


def _ended(**data: Any) -> dict[str, Any]:
    base = {"session": SID, "uid": "04A1B2C3", "member": 12, "started": "2026-11-22T19:00:00Z",
            "ended": "2026-11-22T20:00:00Z", "duration_s": 3600, "active_s": 60,
            "reason": "badge_out"}
    base.update(data)
    return _event("session.ended", base)


def _raw(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _decode_error(decode: Any, payload: Any) -> str:
    with pytest.raises(ProtocolError) as info:
        decode(payload)
    return str(info.value)


# ---------------------------------------------------------------- nesting and size


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 100_000])
@pytest.mark.parametrize("where", ["top", "data"])
def test_deep_nesting_is_a_protocol_error_for_every_decoder(depth: int, where: str) -> None:
    """json.loads raised RecursionError here, which stalled the server's ingest (issue 13.1)."""
    deep = b"[" * depth + b"]" * depth
    payload = deep if where == "top" else _raw(_event()).replace(b'"data": {}', b'"data": ' + deep)
    for decode in DECODERS:
        message = _decode_error(decode, payload)
        assert f"deeper than {MAX_DEPTH}" in message or "bytes, over the limit" in message


def test_depth_bound_is_exact_and_strings_do_not_count() -> None:
    def nested(levels: int) -> Any:  # an event is 1 level, its data 2: the rest nests inside
        value: Any = "x"
        for _ in range(levels):
            value = [value]
        return value
    assert Event.decode(_raw(_event(data={"a": nested(MAX_DEPTH - 2)}))).known is False
    message = _decode_error(Event.decode, _raw(_event(data={"a": nested(MAX_DEPTH - 1)})))
    assert f"deeper than {MAX_DEPTH}" in message
    brackets = "[[[{{{" * 100 + '\\"]]]' * 50  # brackets inside strings are text, not nesting
    assert Event.decode(_raw(_event(data={"label": brackets}))).data == {"label": brackets}
    assert Event.decode(_event(data={"a": nested(5)})).data == {"a": nested(5)}  # a dict input
    with pytest.raises(ProtocolError, match="deeper than"):
        Event.decode(_event(data={"a": nested(MAX_DEPTH)}))


def test_size_bounds_name_the_size() -> None:
    big = _raw(_event(data={"pad": "x" * MAX_EVENT_BYTES}))
    assert f"over the limit of {MAX_EVENT_BYTES}" in _decode_error(Event.decode, big)
    acl = AccessList(version=1, site="lab", node="laser-1", machine="laser-1", issued=T0,
                     valid_until=T0, locked=False, policy={},
                     badges=[BadgeEntry(uid=f"{i:08X}", member=i, label="M" * 40)
                             for i in range(30_000)])
    encoded = acl.encode()
    assert len(encoded) > 2_000_000  # megabytes: a real list of a large consortium
    assert len(AccessList.decode(encoded).badges) == 30_000


# ---------------------------------------------------------------- numbers and text


@pytest.mark.parametrize("spelling", ["NaN", "-NaN", "nan", "Infinity", "-Infinity", "inf",
                                      "-inf", "Inf", "1e400", "-1e400", "1E999"])
def test_non_finite_numbers_are_refused_however_spelled(spelling: str) -> None:
    payload = _raw(_ended()).replace(b'"duration_s": 3600', f'"duration_s": {spelling}'.encode())
    assert b"3600" not in payload
    for decode in DECODERS:
        _decode_error(decode, payload)
    with pytest.raises(ProtocolError, match="finite"):
        Event.decode(_ended(duration_s=float(spelling.replace("1e400", "inf")
                                             .replace("1E999", "inf"))))


def test_extreme_but_finite_numbers() -> None:
    ev = Event.decode(_raw(_ended(duration_s=1e308, active_s=-0.0)))
    assert ev.data["duration_s"] == 1e308
    assert Event.decode(b'{"v":1,"id":"%s","node":"n","boot":"%s","seq":-0,"ts":"2026-11-22T'
                        b'19:20:50Z","type":"x","data":{}}' % (SID.encode(), BOOT.encode())).seq == 0
    for field, value in (("member", 10**30), ("member", -(2**65))):
        with pytest.raises(ProtocolError, match="out of range"):
            Event.decode(_raw(_ended(**{field: value})))
    with pytest.raises(ProtocolError, match="out of range"):
        Event.decode(_raw(_event(seq=2**70)))
    _decode_error(Event.decode, _raw(_event()).replace(b'"seq": 1', b'"seq": ' + b"9" * 5000))


def test_nul_and_lone_surrogates_are_refused() -> None:
    for decode in DECODERS:
        assert "NUL" in _decode_error(decode, _raw(_event(data={"x": "a\u0000b"})))
        _decode_error(decode, _raw(_event()).replace(b"door", b"\\ud800door"))
        _decode_error(decode, '{"v":1,"id":"\ud800"}')  # a str payload that is not UTF-8
    assert "surrogate" in _decode_error(Event.decode, _raw(_event(data={"x": "\udc00"})))
    text = Event.decode(_raw(_event(data={"x": "a\\u0000b"}))).data["x"]  # a backslash, then text
    assert text == "a\\u0000b"
    with pytest.raises(ProtocolError, match="surrogate"):
        Event.decode(_event(data={"x": "\ud800"}))  # a dict input


def test_duplicate_keys_last_one_wins() -> None:
    payload = _raw(_event()).replace(b'"seq": 1', b'"seq": 1, "seq": 7')
    assert Event.decode(payload).seq == 7


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z",
                                  "2026-11-22T23:59:59+23:59", "2026-11-22T00:00:00-00:00"])
def test_extreme_times_that_are_valid(text: str) -> None:
    assert Event.decode(_raw(_event(ts=text))).ts == parse_ts(text)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-01:00",
                                  "2016-12-31T23:59:60Z", "2026-11-22T10:00:00+24:00",
                                  "0000-01-01T00:00:00Z", "2026-02-30T00:00:00Z",
                                  "2026-11-22T10:00:00Z\n", "٢٠٢٦-11-22T10:00:00Z"])
def test_impossible_times_are_protocol_errors(text: str) -> None:
    """Year 1 pushed before the calendar by its offset raised OverflowError; a leap second is
    refused (no datetime holds second 60, and no node writes one)."""
    assert "'ts'" in _decode_error(Event.decode, _raw(_event(ts=text)))


# ---------------------------------------------------------------- peek_id


def test_peek_id_reads_the_top_level_id_and_never_raises() -> None:
    assert peek_id is messages_peek_id
    deep = b"[" * 20_000 + b"]" * 20_000
    assert peek_id(_raw(_event()).replace(b'"data": {}', b'"data": ' + deep)) == SID
    assert peek_id(_raw(_event(data=float("nan")))) == SID
    assert peek_id(b'{"data": {"id": "%s"}}' % SID.encode()) is None  # not the event's id
    assert peek_id(b'{"x": "\\"id\\": ", "id": "%s"}' % SID.encode()) == SID
    for garbage in (b"", b"\xff", b"{" * 100_000, b'{"id": 1}', b'{"id": "nope"}', None, 3,
                    "\ud800", b'{"id": "\\ud800"}', b'["id", "%s"]' % SID.encode(),
                    b'{"id": "%s"' % SID.encode() + b" " * MAX_EVENT_BYTES + b"}"):
        assert peek_id(garbage) is None, garbage[:40] if isinstance(garbage, bytes) else garbage


# ---------------------------------------------------------------- plausibility


@pytest.mark.parametrize(("data", "message"), [
    ({"active_s": 3600.5}, "'active_s' (3600.5) must not exceed 'duration_s' (3600)"),
    ({"duration_s": -1}, "'duration_s' must not be negative"),
    ({"active_s": -0.5}, "'active_s' must not be negative"),
    ({"duration_s": "60"}, "'duration_s' must be an integer or a number, not str"),
])
def test_implausible_durations_are_refused_with_a_reason(data: dict[str, Any], message: str) -> None:
    assert message in _decode_error(Event.decode, _raw(_ended(**data)))


def test_heartbeat_active_time_fits_in_elapsed_time() -> None:
    hb = _event("session.heartbeat", {"session": SID, "uid": "04A1B2C3", "member": 1,
                                      "elapsed_s": 60, "active_s": 60})
    assert Event.decode(_raw(hb)).known
    hb["data"]["active_s"] = 61
    assert "must not exceed 'elapsed_s'" in _decode_error(Event.decode, _raw(hb))


def test_event_exposes_parsed_times_for_the_servers_rules() -> None:
    ev = Event.decode(_raw(_ended()))
    assert ev.time("started") == datetime(2026, 11, 22, 19, tzinfo=UTC)
    assert ev.time("ended") - ev.time("started") == timedelta(hours=1)  # type: ignore[operator]
    assert ev.time("until") is None


# ---------------------------------------------------------------- contract section 6


@pytest.mark.parametrize("reason", ["no_booking", "no_credit", "actuator_failed",
                                    "actuator_offline"])
def test_new_refusal_reasons(reason: str) -> None:
    ev = Event.create(node="laser-1", boot=BOOT, seq=1, ts=T0, type="badge.denied",
                      data={"uid": "04A1B2C3", "reason": reason})
    assert Event.decode(ev.encode()) == ev


def test_booked_refusal_carries_until() -> None:
    until = "2026-11-22T21:00:00.000Z"
    ev = Event.create(node="laser-1", boot=BOOT, seq=1, ts=T0, type="badge.denied",
                      data={"uid": "04A1B2C3", "reason": "booked", "until": until})
    back = Event.decode(ev.encode())
    assert back == ev and back.time("until") == parse_ts(until)
    for data, message in (({"uid": "04A1B2C3", "reason": "booked"}, "missing field 'until'"),
                          ({"uid": "04A1B2C3", "reason": "booked", "until": None}, "'until'"),
                          ({"uid": "04A1B2C3", "reason": "in_use", "until": "soon"}, "'until'")):
        assert message in _decode_error(Event.decode, _raw(_event("badge.denied", data)))


def _acl(**changes: Any) -> AccessList:
    acl = AccessList(
        version=5, site="lab", node="laser-1", machine="laser-1", issued=T0,
        valid_until=T0 + timedelta(days=7), locked=False, policy={"booking": "required"},
        badges=[BadgeEntry(uid="04A1B2C3", member=12), BadgeEntry(uid="04A1B2C4", member=13,
                                                                   credit_ok=False)],
        bookings=[Booking(member=12, start=T0, end=T0 + timedelta(hours=2))])
    for key, value in changes.items():
        setattr(acl, key, value)
    return acl


def test_access_list_bookings_credit_and_booking_policy_round_trip() -> None:
    acl = _acl()
    wire = json.loads(acl.encode())
    assert wire["bookings"] == [{"member": 12, "start": "2026-11-22T19:20:50.123Z",
                                 "end": "2026-11-22T21:20:50.123Z"}]
    assert "credit_ok" not in wire["badges"][0] and wire["badges"][1]["credit_ok"] is False
    back = AccessList.decode(acl.encode())
    assert back == acl and back.booking_mode == "required"
    assert not back.by_uid()["04A1B2C4"].credit_ok and back.by_uid()["04A1B2C3"].credit_ok
    plain = AccessList.decode(_acl(bookings=[], policy={}).encode())  # all of it is optional
    assert plain.bookings == [] and plain.booking_mode == "off"
    assert "bookings" not in json.loads(_acl(bookings=[]).encode())


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda o: o["policy"].update(booking="maybe"), "'booking' is 'maybe'"),
    (lambda o: o["badges"][0].update(credit_ok="yes"), r"badges\[0\]: field 'credit_ok' must be a boolean"),
    (lambda o: o["bookings"][0].update(end=o["bookings"][0]["start"]), r"bookings\[0\]: field 'end' must be after"),
    (lambda o: o["bookings"][0].pop("member"), r"bookings\[0\]: missing field 'member'"),
    (lambda o: o["bookings"][0].update(start="tomorrow"), r"bookings\[0\]: field 'start'"),
    (lambda o: o.update(bookings={"member": 1}), "'bookings' must be a list"),
    (lambda o: o["bookings"].append(3), r"bookings\[1\]: must be an object"),
])
def test_access_list_additions_are_strict_when_present(mutate: Any, message: str) -> None:
    obj = _acl().to_dict()
    mutate(obj)
    with pytest.raises(ProtocolError, match=message):
        AccessList.decode(_raw(obj))
