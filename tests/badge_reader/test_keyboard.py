"""Keyboard-wedge readers: the key-event parser, and KeyboardReader on a fake evdev device."""

from __future__ import annotations

import os
import struct
import sys
import threading
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from badge_reader import ReaderBusError, ReaderUnavailableError
from badge_reader.errors import InvalidUidError
from badge_reader.keyboard import KeyboardReader, KeyboardUidParser, open_input_device

# Linux keycodes
DIGITS = {"1": 2, "2": 3, "3": 4, "4": 5, "5": 6, "6": 7, "7": 8, "8": 9, "9": 10, "0": 11}
LETTERS = {"A": 30, "B": 48, "C": 46, "D": 32, "E": 18, "F": 33}
ENTER, KP_ENTER, SHIFT, KEY_X = 28, 96, 42, 45


def keys(text: str, enter: int = ENTER) -> list[tuple[int, int]]:
    """Key events as a wedge types `text` + Enter (down/up pairs; Shift around letters)."""
    out: list[tuple[int, int]] = []
    for ch in text:
        if ch.upper() in LETTERS:
            code = LETTERS[ch.upper()]
            out += [(SHIFT, 1), (code, 1), (code, 0), (SHIFT, 0)]
        else:
            code = DIGITS[ch]
            out += [(code, 1), (code, 0)]
    return out + [(enter, 1), (enter, 0)]


UID = "04A1B2C3"
UID_BE = int.from_bytes(bytes.fromhex(UID), "big")  # 77705923
UID_LE = int.from_bytes(bytes.fromhex(UID), "little")  # 3283263748


def test_decimal_constants() -> None:
    assert (UID_BE, UID_LE) == (77705923, 3283263748)


@pytest.mark.parametrize(
    ("fmt", "uid_bytes", "typed", "expected"),
    [
        ("hex", 4, "04a1b2c3", UID),
        ("hex", 4, "04A1B2C3D4E5F6", "04A1B2C3D4E5F6"),  # hex keeps any valid length
        ("hex_reversed", 4, "C3B2A104", UID),
        ("hex_reversed", 7, "F6E5D4C3B2A104", "04A1B2C3D4E5F6"),
        ("decimal", 4, "0077705923", UID),
        ("decimal", 4, "77705923", UID),
        ("decimal_reversed", 4, "3283263748", UID),
        ("decimal", 7, str(int("04A1B2C3D4E5F6", 16)), "04A1B2C3D4E5F6"),
        ("decimal_reversed", 7, str(int.from_bytes(bytes.fromhex("04A1B2C3D4E5F6"), "little")),
         "04A1B2C3D4E5F6"),
    ],
)  # fmt: skip
def test_formats(fmt: str, uid_bytes: int, typed: str, expected: str) -> None:
    parser = KeyboardUidParser(fmt, uid_bytes)  # type: ignore[arg-type]
    assert parser.feed_all(keys(typed)) == [expected]


def test_keypad_digits_and_enter() -> None:
    kp = {"0": 82, "7": 71, "9": 73, "5": 76, "2": 80, "3": 81}
    events = [(kp[c], 1) for c in "0077705923"] + [(KP_ENTER, 1)]
    assert KeyboardUidParser("decimal").feed_all(events) == [UID]


def test_only_key_down_counts_and_other_keys_ignored() -> None:
    p = KeyboardUidParser("hex")
    events = [(DIGITS["0"], 1), (DIGITS["0"], 2), (DIGITS["0"], 2), (DIGITS["4"], 1), (KEY_X, 1)]
    events += keys("A1B2C3")
    assert p.feed_all(events) == [UID]  # repeats (value 2) and 'x' dropped


def test_several_uids_in_one_stream() -> None:
    p = KeyboardUidParser("hex")
    assert p.feed_all(keys(UID) + keys("11223344") + [(ENTER, 1)]) == [UID, "11223344"]


@pytest.mark.parametrize(
    ("fmt", "typed", "fragment"),
    [
        ("hex", "04A1B2", "not a badge UID"),
        ("decimal", "04A1", "not a decimal number"),
        ("decimal", "4294967296", "does not fit in 4 bytes"),
    ],
)
def test_bad_lines_are_dropped_not_raised(fmt: str, typed: str, fragment: str) -> None:
    p = KeyboardUidParser(fmt)  # type: ignore[arg-type]
    assert p.feed_all(keys(typed)) == []
    assert p.last_error is not None and fragment in p.last_error
    assert p.feed_all(keys("04A1B2C3" if fmt == "hex" else "77705923")) == [UID]
    assert p.last_error is None


def test_runaway_typing_is_bounded() -> None:
    p = KeyboardUidParser("hex")
    assert p.feed_all(keys("1" * 45 + UID)) == []  # the buffer was dropped once, mid-way
    assert p.feed_all(keys(UID)) == [UID]


def test_bad_parser_options() -> None:
    with pytest.raises(InvalidUidError, match="format"):
        KeyboardUidParser("octal")  # type: ignore[arg-type]
    with pytest.raises(InvalidUidError, match="uid_bytes"):
        KeyboardUidParser("decimal", 5)


@dataclass
class Ev:
    type: int
    code: int
    value: int


class FakeInputDevice:
    """Like evdev.InputDevice: read_loop() blocks for events; close() ends it."""

    def __init__(self, name: str = "fake wedge") -> None:
        self.name = name
        self.grabbed = False
        self.closed = False
        self._cond = threading.Condition()
        self._pending: list[Ev] = []
        self._consumed = 0
        self._fail: OSError | None = None

    def grab(self) -> None:
        self.grabbed = True

    def ungrab(self) -> None:
        self.grabbed = False

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def type(self, events: list[tuple[int, int]]) -> int:
        """Queue EV_KEY events (plus a SYN in between, like the kernel); return the target count."""
        with self._cond:
            for code, value in events:
                self._pending.append(Ev(1, code, value))
                self._pending.append(Ev(0, 0, 0))
            self._cond.notify_all()
            return self._consumed + len(self._pending)

    def fail(self, exc: OSError) -> None:
        with self._cond:
            self._fail = exc
            self._cond.notify_all()

    def wait_consumed(self, count: int, timeout: float = 2.0) -> bool:
        """True once the reader has handled `count` events (it asked for the next one)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._consumed >= count, timeout)

    def read_loop(self) -> Iterator[Ev]:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self.closed or self._fail)
                if self._fail is not None:
                    raise self._fail
                if self.closed:
                    raise OSError(9, "Bad file descriptor")
                ev = self._pending.pop(0)
            yield ev
            with self._cond:
                self._consumed += 1
                self._cond.notify_all()


class FakeClock:
    def __init__(self) -> None:
        self.t = 50.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def dev() -> Iterator[FakeInputDevice]:
    d = FakeInputDevice()
    yield d
    d.close()


def test_reader_grabs_and_reports_a_tap_for_the_hold_time(dev: FakeInputDevice) -> None:
    clock = FakeClock()
    reader = KeyboardReader(input_device=dev, format="decimal_reversed", hold_s=0.5, clock=clock)
    try:
        assert dev.grabbed
        assert reader.poll() is None
        assert dev.wait_consumed(dev.type(keys(str(UID_LE))))
        assert reader.poll() == UID
        clock.t += 0.4
        assert reader.poll() == UID
        clock.t += 0.2
        assert reader.poll() is None
        assert reader.poll() is None
    finally:
        reader.close()
    assert dev.closed and not dev.grabbed


def test_typed_uid_is_reported_once_even_if_polled_late(dev: FakeInputDevice) -> None:
    clock = FakeClock()
    reader = KeyboardReader(input_device=dev, hold_s=0.5, clock=clock)
    try:
        assert dev.wait_consumed(dev.type(keys(UID)))
        clock.t += 3.0
        assert reader.poll() == UID
        assert reader.poll() is None
    finally:
        reader.close()


def test_no_grab_when_disabled(dev: FakeInputDevice) -> None:
    reader = KeyboardReader(input_device=dev, grab=False)
    assert not dev.grabbed
    reader.close()


def test_lost_device_is_reported_once_by_poll(dev: FakeInputDevice) -> None:
    reader = KeyboardReader(input_device=dev)
    try:
        dev.fail(OSError(19, "No such device"))
        reader._thread.join(2.0)  # an injected device is not reopened: the thread ends
        assert not reader._thread.is_alive()
        with pytest.raises(ReaderBusError, match="lost"):
            reader.poll()
        assert reader.poll() is None
    finally:
        reader.close()


def test_close_stops_the_thread(dev: FakeInputDevice) -> None:
    reader = KeyboardReader(input_device=dev)
    reader.close()
    assert not reader._thread.is_alive()


def _fake_evdev(devices: dict[str, str]) -> types.ModuleType:
    mod = types.ModuleType("evdev")

    class InputDevice(FakeInputDevice):
        def __init__(self, path: str) -> None:
            if path not in devices:
                raise FileNotFoundError(path)
            super().__init__(devices[path])
            self.path = path

    mod.InputDevice = InputDevice  # type: ignore[attr-defined]
    mod.list_devices = lambda: list(devices)  # type: ignore[attr-defined]
    return mod


def test_open_by_name_substring_and_path(monkeypatch: pytest.MonkeyPatch) -> None:
    devices = {
        "/dev/input/event0": "Power Button",
        "/dev/input/event3": "Sycreader RFID Technology",
    }
    monkeypatch.setitem(sys.modules, "evdev", _fake_evdev(devices))
    assert open_input_device("rfid").path == "/dev/input/event3"
    assert open_input_device("/dev/input/event0").name == "Power Button"
    with pytest.raises(ReaderUnavailableError, match="Power Button"):
        open_input_device("barcode")
    with pytest.raises(ReaderUnavailableError, match="does not exist"):
        open_input_device("/dev/input/event9")


def test_reader_by_name_uses_evdev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "evdev", _fake_evdev({"/dev/input/event3": "RFID reader"}))
    reader = KeyboardReader("RFID")
    try:
        dev = reader._dev
        assert dev.grabbed
        assert dev.wait_consumed(dev.type(keys(UID)))
        assert reader.poll() == UID
    finally:
        reader.close()


def test_missing_evdev_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "evdev", None)
    with pytest.raises(ReaderUnavailableError, match="evdev"):
        KeyboardReader("/dev/input/event0")


def test_make_reader_keyboard(monkeypatch: pytest.MonkeyPatch) -> None:
    from badge_reader import ReaderConfigError, make_reader
    from firmware_config.node_config import ReaderConfig

    monkeypatch.setitem(sys.modules, "evdev", _fake_evdev({"/dev/input/event3": "RFID reader"}))
    cfg = ReaderConfig(type="keyboard", device="rfid", format="decimal_reversed", grab=False)
    reader = make_reader(cfg, simulate=False)
    try:
        assert isinstance(reader, KeyboardReader)
        assert reader.parser.format == "decimal_reversed" and not reader._dev.grabbed
        dev = reader._dev
        assert dev.wait_consumed(dev.type(keys(str(UID_LE))))
        assert reader.poll() == UID
    finally:
        reader.close()
    with pytest.raises(ReaderConfigError, match="reader.device"):
        make_reader(ReaderConfig(type="keyboard"), simulate=False)


class FdInputDevice:
    """Like a real evdev.InputDevice: an `fd` to select on and a non-blocking `read()`."""

    def __init__(self) -> None:
        self.fd, self._w = os.pipe()
        os.set_blocking(self.fd, False)
        self.name = "fd wedge"
        self.grabbed = False

    def grab(self) -> None:
        self.grabbed = True

    def ungrab(self) -> None:
        self.grabbed = False

    def type(self, events: list[tuple[int, int]]) -> None:
        os.write(self._w, b"".join(struct.pack("<Hi", code, value) for code, value in events))

    def read(self) -> Iterator[Ev]:
        data = os.read(self.fd, 4096)  # BlockingIOError when empty, like evdev
        for code, value in struct.iter_unpack("<Hi", data):
            yield Ev(1, code, value)

    def close(self) -> None:
        os.close(self._w)  # the reader's fd is closed by the test after the thread ended


def test_reader_on_a_selectable_fd_and_prompt_close() -> None:
    dev = FdInputDevice()
    got = threading.Event()
    reader = KeyboardReader(input_device=dev, format="hex")
    original = reader._typed

    def typed(uid: str) -> None:
        original(uid)
        got.set()

    reader._typed = typed  # type: ignore[method-assign]
    try:
        dev.type(keys(UID))
        assert got.wait(2.0)
        assert reader.poll() == UID
    finally:
        t0 = time.monotonic()
        reader.close()
        assert not reader._thread.is_alive()
        assert time.monotonic() - t0 < 1.0
        os.close(dev.fd)


def _wedge_typing(uid: bytes, fmt: str) -> str:
    """What a wedge configured for `fmt` types for a card with UID `uid`."""
    if fmt == "hex":
        return uid.hex()
    if fmt == "hex_reversed":
        return uid[::-1].hex().upper()
    if fmt == "decimal":
        return str(int.from_bytes(uid, "big")).zfill(10)
    return str(int.from_bytes(uid, "little"))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([4, 7, 10]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    st.sampled_from(["hex", "hex_reversed", "decimal", "decimal_reversed"]),
)
def test_every_format_round_trips(uid: bytes, fmt: str) -> None:
    parser = KeyboardUidParser(fmt, len(uid))  # type: ignore[arg-type]
    assert parser.feed_all(keys(_wedge_typing(uid, fmt))) == [uid.hex().upper()]
