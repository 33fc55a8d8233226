"""Protocol v1: round trips, strict decoding with clear messages, lenient on unknown keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from protocol import (
    AccessList,
    Ack,
    BadgeEntry,
    Command,
    Event,
    ProtocolError,
    SessionInfo,
    Status,
    Topics,
    format_ts,
    normalize_uid,
    parse_ts,
)

T0 = datetime(2026, 11, 22, 19, 20, 50, 123000, tzinfo=UTC)
SID = "8d3f2a64-1c1e-4d55-9a8e-2b6f0c3b9d11"
BOOT = "0b5b1f0e-7e0a-4b8e-8d0c-0e5d1f2a3b4c"


def test_time_format_is_rfc3339_utc_with_millis() -> None:
    assert format_ts(T0) == "2026-11-22T19:20:50.123Z"
    assert parse_ts("2026-11-22T19:20:50.123Z") == T0
    assert parse_ts("2026-11-22T20:20:50.123+01:00") == T0
    assert parse_ts("2026-11-22T19:20:50.123456789Z").microsecond == 123456
    with pytest.raises(ProtocolError, match="RFC 3339"):
        parse_ts("22/11/2026")


@pytest.mark.parametrize(
    ("raw", "uid"),
    [("04:a1:b2:c3", "04A1B2C3"), ("04-A1-B2-C3-D4-E5-F6", "04A1B2C3D4E5F6"),
     ("04a1b2c3d4e5f6a7b8c9", "04A1B2C3D4E5F6A7B8C9")],
)
def test_uid_normalisation(raw: str, uid: str) -> None:
    assert normalize_uid(raw) == uid


@pytest.mark.parametrize("raw", ["", "04A1B2", "04A1B2C3D4", "ZZA1B2C3", "04A1B2C3AA"])
def test_bad_uids_are_refused(raw: str) -> None:
    with pytest.raises(ProtocolError, match="badge UID"):
        normalize_uid(raw)


def test_topics_build_and_parse() -> None:
    t = Topics("fabpass")
    assert t.event("amiens", "laser-1") == "fabpass/v1/amiens/laser-1/event"
    parts = t.parse("fabpass/v1/amiens/laser-1/status")
    assert (parts.site, parts.node, parts.kind) == ("amiens", "laser-1", "status")
    assert t.wildcard("event") == "fabpass/v1/+/+/event"
    for bad in ("fabpass/v2/a/b/event", "fabpass/v1/a/b/c/event", "fabpass/v1/A/b/event",
                "other/v1/a/b/event", "fabpass/v1/a/b/nope"):
        with pytest.raises(ProtocolError):
            t.parse(bad)


def test_event_round_trip_and_validation() -> None:
    ev = Event.create(node="laser-1", boot=BOOT, seq=42, ts=T0, type="session.ended", data={
        "session": SID, "uid": "04A1B2C3", "member": 12, "started": format_ts(T0),
        "ended": format_ts(T0), "duration_s": 61.5, "active_s": 30, "reason": "badge_out"})
    back = Event.decode(ev.encode())
    assert back == ev and back.known
    obj = ev.to_dict()
    obj["future_field"] = {"x": 1}  # decoders ignore keys they do not know
    assert Event.decode(json.dumps(obj)).id == ev.id


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: o.update(v=2), "version"),
        (lambda o: o.pop("id"), "missing field 'id'"),
        (lambda o: o.update(seq="1"), "'seq' must be an integer"),
        (lambda o: o.update(seq=True), "'seq' must be an integer"),
        (lambda o: o.update(node="Laser 1"), "slug"),
        (lambda o: o.update(ts="yesterday"), "'ts'"),
        (lambda o: o["data"].update(reason="bored"), "'reason'"),
        (lambda o: o["data"].pop("uid"), "missing field 'uid'"),
        (lambda o: o["data"].update(uid="04A1B2C3AA"), "badge UID"),
    ],
)
def test_event_strict_decode(mutate: object, message: str) -> None:
    obj = Event.create(node="laser-1", boot=BOOT, seq=1, ts=T0, type="badge.denied",
                       data={"uid": "04A1B2C3", "reason": "unknown_badge"}).to_dict()
    mutate(obj)  # type: ignore[operator]
    with pytest.raises(ProtocolError, match=message):
        Event.decode(json.dumps(obj).encode())


def test_unknown_event_type_is_kept_raw() -> None:
    ev = Event.decode(json.dumps({"v": 1, "id": SID, "node": "n1", "boot": BOOT, "seq": 0,
                                  "ts": format_ts(T0), "type": "door.opened", "data": {"x": 1}}))
    assert not ev.known and ev.data == {"x": 1}


@pytest.mark.parametrize("payload", [b"", b"\xff\xfe", b"[]", b"null", b"on", b'"on"', b"1"])
def test_garbage_is_a_protocol_error(payload: bytes) -> None:
    for decoder in (Event.decode, Status.decode, AccessList.decode, Ack.decode, Command.decode):
        with pytest.raises(ProtocolError):
            decoder(payload)


def test_status_and_last_will() -> None:
    will = Status.last_will("laser-1")
    assert will.to_dict() == {"v": 1, "node": "laser-1", "online": False}
    st = Status(node="laser-1", online=True, state="in_use", relay=True, warning=False,
                session=SessionInfo(id=SID, uid="04A1B2C3", member=12, started=T0),
                acl_version=5, clock_ok=True, last_cmd=None, software="0.1.0", ts=T0)
    assert Status.decode(st.encode()) == st
    assert Status.decode(will.encode()).online is False
    bad = st.to_dict()
    bad["state"] = "dancing"
    with pytest.raises(ProtocolError, match="state"):
        Status.decode(json.dumps(bad))


def test_access_list_round_trip_and_policy_checks() -> None:
    acl = AccessList(version=1732300000000, site="amiens", node="laser-1", machine="laser-1",
                     issued=T0, valid_until=T0, locked=False,
                     policy={"mode": "tap", "max_session_s": None, "handover": True},
                     badges=[BadgeEntry(uid="04A1B2C3", member=12, role="trainer", label="Alice D."),
                             BadgeEntry(uid="04A1B2C3D4E5F6", member=13, until=T0)])
    back = AccessList.decode(acl.encode())
    assert back == acl
    assert back.by_uid()["04A1B2C3D4E5F6"].until == T0
    obj = acl.to_dict()
    obj["policy"]["mode"] = "forever"
    with pytest.raises(ProtocolError, match="mode"):
        AccessList.decode(json.dumps(obj))
    obj = acl.to_dict()
    obj["badges"][1]["role"] = "admin"
    with pytest.raises(ProtocolError, match=r"badges\[1\]"):
        AccessList.decode(json.dumps(obj))


def test_ack_and_command() -> None:
    assert Ack.decode(Ack(ids=[SID], rejected=[]).encode()).ids == [SID]
    assert Ack.decode(b'{"v":1,"ids":[]}').rejected == []
    with pytest.raises(ProtocolError):
        Ack.decode(b'{"v":1,"ids":[1]}')
    cmd = Command.create("lock", T0)
    assert Command.decode(cmd.encode()) == cmd
    with pytest.raises(ProtocolError, match="cmd"):
        Command.decode(b'{"v":1,"id":"%s","ts":"2026-11-22T19:20:50.123Z","cmd":"on"}' % SID.encode())
