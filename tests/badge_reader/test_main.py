"""`python -m badge_reader`: the stand-alone reader check, on the fake chip and a fake evdev."""

from __future__ import annotations

import io
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fake_mfrc522 import FakeCard, FakeMfrc522, FakeSpiDev

from badge_reader.__main__ import main
from badge_reader.keyboard import explain


def test_mfrc522_watch_prints_placed(monkeypatch: pytest.MonkeyPatch) -> None:
    chip = FakeMfrc522()
    chip.place(FakeCard.from_hex("04112233445566"))
    monkeypatch.setitem(
        sys.modules, "spidev", types.SimpleNamespace(SpiDev=lambda: FakeSpiDev(chip))
    )
    out = io.StringIO()
    assert main(["mfrc522", "--reset-pin", "none", "--seconds", "0.3"], out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("MFRC522 version 0x92")
    assert lines[1:] == ["placed 04112233445566"]


def test_mfrc522_missing_chip_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    chip = FakeMfrc522(version=0)
    monkeypatch.setitem(
        sys.modules, "spidev", types.SimpleNamespace(SpiDev=lambda: FakeSpiDev(chip))
    )
    assert main(["mfrc522", "--reset-pin", "none", "--seconds", "0"], io.StringIO()) == 1


@dataclass
class Ev:
    type: int
    code: int
    value: int


class ScriptedDevice:
    def __init__(self, path: str) -> None:
        self.path, self.name, self.grabbed = path, "RFID wedge", False

    def grab(self) -> None:
        self.grabbed = True

    def ungrab(self) -> None:
        self.grabbed = False

    def close(self) -> None:
        pass

    def read_loop(self) -> Iterator[Ev]:
        # "3283263748" then Enter, as key-down/key-up pairs
        codes = {"1": 2, "2": 3, "3": 4, "4": 5, "6": 7, "7": 8, "8": 9}
        for ch in "3283263748":
            yield Ev(1, codes[ch], 1)
            yield Ev(1, codes[ch], 0)
        yield Ev(1, 28, 1)


def test_keyboard_watch_explains_every_format(monkeypatch: pytest.MonkeyPatch) -> None:
    evdev = types.SimpleNamespace(
        InputDevice=ScriptedDevice, list_devices=lambda: ["/dev/input/event3"]
    )
    monkeypatch.setitem(sys.modules, "evdev", evdev)
    out = io.StringIO()
    assert main(["keyboard", "wedge"], out) == 0
    text = out.getvalue()
    assert "typed 3283263748" in text
    assert "decimal_reversed  04A1B2C3" in text
    assert main(["list"], out) == 0
    assert "/dev/input/event3  RFID wedge" in out.getvalue()


def test_explain() -> None:
    got = explain("3283263748")
    assert got["decimal_reversed"] == "04A1B2C3"
    assert got["decimal"] == "C3B2A104"
    assert got["hex"].startswith("- (")  # 10 hex digits is not a UID
