"""SimReader, parse_sim_line and make_reader(sim)."""

from __future__ import annotations

import threading

import pytest

from badge_reader import (
    BadgeReaderError,
    InvalidUidError,
    ReaderEvent,
    ReaderLoop,
    SimCommand,
    SimLineError,
    SimReader,
    make_reader,
    parse_sim_line,
)
from firmware_config.node_config import ReaderConfig


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_place_and_remove_normalise_uid() -> None:
    r = SimReader()
    assert r.poll() is None
    assert r.place("04:a1:b2:c3") == "04A1B2C3"
    assert [r.poll() for _ in range(3)] == ["04A1B2C3"] * 3
    r.remove()
    assert r.poll() is None
    r.remove()  # no card: no-op
    assert r.poll() is None


@pytest.mark.parametrize("uid", ["04A1B2C3D4E5F6", "0102030405060708090A"])
def test_long_uids(uid: str) -> None:
    r = SimReader()
    r.place(uid.lower())
    assert r.poll() == uid


@pytest.mark.parametrize("bad", ["", "04A1B2", "04A1B2C3D4", "ZZA1B2C3", "04A1B2C3FF"])
def test_invalid_uid_raises_clear_error(bad: str) -> None:
    r = SimReader()
    with pytest.raises(InvalidUidError, match="badge UID") as info:
        r.place(bad)
    assert isinstance(info.value, BadgeReaderError)
    with pytest.raises(InvalidUidError):
        r.tap(bad)
    assert r.poll() is None


def test_tap_holds_then_removes() -> None:
    clock = FakeClock()
    r = SimReader(clock=clock)
    r.tap("04a1b2c3", hold_s=0.3)
    assert r.poll() == "04A1B2C3"
    clock.t += 0.29
    assert r.poll() == "04A1B2C3"
    clock.t += 0.02
    assert r.poll() is None
    assert r.poll() is None


def test_tap_is_reported_once_even_if_polled_late() -> None:
    clock = FakeClock()
    r = SimReader(clock=clock)
    r.tap("04A1B2C3", hold_s=0.3)
    clock.t += 5.0  # the poller was late: the tap must not be lost
    assert r.poll() == "04A1B2C3"
    assert r.poll() is None


def test_place_replaces_tap_and_tap_replaces_place() -> None:
    clock = FakeClock()
    r = SimReader(clock=clock)
    r.tap("04A1B2C3")
    r.poll()
    r.place("11223344")
    clock.t += 10
    assert r.poll() == "11223344"  # a placed card does not expire
    r.tap("55667788", hold_s=0.1)
    assert r.poll() == "55667788"
    clock.t += 0.2
    assert r.poll() is None


def test_thread_safety_under_concurrent_calls() -> None:
    r = SimReader()
    errors: list[BaseException] = []
    uids = {"04A1B2C3", "11223344"}

    def writer(uid: str) -> None:
        try:
            for _ in range(2000):
                r.place(uid)
                r.remove()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(u,)) for u in uids]
    for t in threads:
        t.start()
    seen = set()
    for _ in range(2000):
        seen.add(r.poll())
    for t in threads:
        t.join(10)
    assert not errors
    assert seen <= uids | {None}


def test_reader_loop_turns_tap_into_placed_then_removed() -> None:
    r = SimReader()
    events: list[ReaderEvent] = []
    removed = threading.Event()

    def on_event(ev: ReaderEvent) -> None:
        events.append(ev)
        if ev.kind == "removed":
            removed.set()

    loop = ReaderLoop(r, on_event, rate_hz=100, miss_tolerance=1)
    loop.start()
    try:
        r.tap("04a1b2c3", hold_s=0.05)
        assert removed.wait(2.0)
    finally:
        loop.stop()
    assert events == [ReaderEvent("placed", "04A1B2C3"), ReaderEvent("removed", "04A1B2C3")]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("tap 04A1B2C3", SimCommand("tap", uid="04A1B2C3")),
        ("  TAP 04:a1:b2:c3  \n", SimCommand("tap", uid="04A1B2C3")),
        ("place 04A1B2C3D4E5F6", SimCommand("place", uid="04A1B2C3D4E5F6")),
        ("remove", SimCommand("remove")),
        ("busy on", SimCommand("busy", busy=True)),
        ("busy OFF", SimCommand("busy", busy=False)),
        ("remove  # take it off", SimCommand("remove")),
        ("", None),
        ("   \n", None),
        ("# a comment", None),
    ],
)
def test_parse_sim_line(line: str, expected: SimCommand | None) -> None:
    assert parse_sim_line(line) == expected


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("hello", "unknown simulation command"),
        ("tap", "exactly one UID"),
        ("tap 04A1B2C3 11223344", "exactly one UID"),
        ("place nothex!", "not a badge UID"),
        ("remove 04A1B2C3", "takes no argument"),
        ("busy", "'on' or 'off'"),
        ("busy maybe", "'on' or 'off'"),
    ],
)
def test_parse_sim_line_errors(line: str, fragment: str) -> None:
    with pytest.raises(SimLineError, match=fragment) as info:
        parse_sim_line(line)
    assert isinstance(info.value, BadgeReaderError)


def test_apply_commands() -> None:
    r = SimReader()
    assert r.apply(SimCommand("place", uid="04A1B2C3"))
    assert r.poll() == "04A1B2C3"
    assert r.apply(SimCommand("remove"))
    assert r.poll() is None
    assert r.apply(SimCommand("tap", uid="11223344"))
    assert r.poll() == "11223344"
    assert not r.apply(SimCommand("busy", busy=True))


@pytest.mark.parametrize("rtype", ["sim", "mfrc522", "keyboard"])
def test_make_reader_simulate_gives_sim(rtype: str) -> None:
    reader = make_reader(ReaderConfig(type=rtype), simulate=True)  # type: ignore[arg-type]
    assert isinstance(reader, SimReader)


def test_make_reader_sim_type_without_simulate() -> None:
    assert isinstance(make_reader(ReaderConfig(type="sim"), simulate=False), SimReader)
