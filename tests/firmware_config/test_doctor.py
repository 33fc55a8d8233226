"""`fabpass node doctor` against MockFactory pins, a fake MFRC522 and real Mosquitto brokers."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from badge_reader import Mfrc522Reader
from fabpass.broker import MosquittoProcess, free_port
from firmware_config import validate_text
from firmware_config.doctor import Doctor, Result

_spec = importlib.util.spec_from_file_location(
    "fc_fake_mfrc522", Path(__file__).parents[1] / "badge_reader" / "fake_mfrc522.py")
assert _spec is not None and _spec.loader is not None
fake = importlib.util.module_from_spec(_spec)
sys.modules["fc_fake_mfrc522"] = fake
_spec.loader.exec_module(fake)

CONFIG = """\
node_id = "laser-1"
site = "lab"
[mqtt]
url = "{url}"
[reader]
type = "{reader}"
reset_pin = false
[gpio]
relay = {{ pin = 17, active_high = {active_high} }}
[storage]
dir = "/tmp/x"
"""


def make_config(url: str = "mqtt://127.0.0.1:1", reader: str = "mfrc522",
                active_high: str = "true") -> Any:
    cfg, report = validate_text(CONFIG.format(url=url, reader=reader, active_high=active_high),
                                "n.toml", {})
    assert cfg is not None, report.problems
    return cfg


def doctor(cfg: Any, tmp_path: Path, **kw: Any) -> Doctor:
    kw.setdefault("clock_probe", lambda: True)
    kw.setdefault("badge_wait_s", 0.2)
    return Doctor(cfg, dev_dir=tmp_path, timeout=2.0, **kw)


def test_spi_device_present_or_missing(tmp_path: Path) -> None:
    d = doctor(make_config(), tmp_path, raspi_config=lambda: True)
    missing = d.check_spi()
    assert missing.ok is False and missing.message.startswith("SPI is off")
    assert "raspi-config nonint do_spi 0" in missing.hint and "reboot" in missing.hint
    (tmp_path / "spidev0.0").touch()
    assert d.check_spi().ok is True
    assert doctor(make_config(reader="sim"), tmp_path).check_spi().ok is None


def test_no_spi_and_no_gpio_off_a_pi_in_plain_words(tmp_path: Path) -> None:
    """What `fabpass node doctor` says in tools/pi-check.sh's arm64 root (no Pi devices)."""
    lines: list[str] = []
    d = doctor(make_config(), tmp_path, raspi_config=lambda: False)
    assert d.run(lines.append) is False
    text = "\n".join(lines)
    assert ("✗ spi: no SPI bus here: " f"{tmp_path}/spidev0.0 does not exist, and this system "
            "has no raspi-config (it is not Raspberry Pi OS)") in text
    assert "dtparam=spi=on" in text
    assert f"✗ gpio: no GPIO here: {tmp_path}/gpiochip0 does not exist" in text
    assert "- reader: not tested: there is no SPI bus (see spi above)" in text
    assert "- relay: not tested: there are no GPIO pins (see gpio above)" in text
    hardware = "\n".join(lines[:lines.index(next(x for x in lines if "broker" in x))])
    assert "Traceback" not in hardware and "Errno" not in hardware


def test_gpio_chip_present(tmp_path: Path) -> None:
    (tmp_path / "gpiochip0").touch()
    result = doctor(make_config(), tmp_path).check_gpio()
    assert result.ok is True and "gpiochip0" in result.message


def test_stop_hint_names_the_single_unit(tmp_path: Path) -> None:
    (tmp_path / "spidev0.0").touch()

    def broken() -> Any:
        raise OSError("no such device")

    result = doctor(make_config(), tmp_path, reader_factory=broken).check_reader()
    assert result.ok is False and "sudo systemctl stop fabpass-node.service" in result.hint


def test_reader_answers_and_reads_a_held_badge(tmp_path: Path) -> None:
    chip = fake.FakeMfrc522()
    chip.place(fake.FakeCard.from_hex("04A1B2C3D4E5F6"))
    d = doctor(make_config(), tmp_path,
               reader_factory=lambda: Mfrc522Reader(fake.FakeSpiDev(chip), reset_pin=None))
    result = d.check_reader()
    assert result.ok is True
    assert "version 0x92" in result.message and "badge 04A1B2C3D4E5F6 read" in result.message


def test_reader_without_badge_still_passes_with_hint(tmp_path: Path) -> None:
    chip = fake.FakeMfrc522()
    d = doctor(make_config(), tmp_path,
               reader_factory=lambda: Mfrc522Reader(fake.FakeSpiDev(chip), reset_pin=None))
    result = d.check_reader()
    assert result.ok is True and "no badge" in result.message and "hold a badge" in result.hint


def test_reader_absent_fails_with_wiring_hint(tmp_path: Path) -> None:
    chip = fake.FakeMfrc522()
    chip.regs[0x37] = 0x00  # VersionReg of a chip that is not there

    d = doctor(make_config(), tmp_path,
               reader_factory=lambda: Mfrc522Reader(fake.FakeSpiDev(chip), reset_pin=None))
    result = d.check_reader()
    assert result.ok is False and "no MFRC522 answers" in result.message
    assert "wiring" in result.hint


def test_relay_click_switches_on_then_off(tmp_path: Path, mock_pins: Any) -> None:
    asked: list[str] = []

    def confirm(question: str) -> bool:
        asked.append(question)
        return True

    d = doctor(make_config(), tmp_path, pin_factory=mock_pins, confirm=confirm)
    result = d.check_relay()
    assert result.ok is True and "GPIO 17" in asked[0]
    pin = mock_pins.pin(17)
    assert [s.state for s in pin.states] == [False, True, False]


def test_relay_click_active_low(tmp_path: Path, mock_pins: Any) -> None:
    d = doctor(make_config(active_high="false"), tmp_path, pin_factory=mock_pins)
    assert d.check_relay().ok is True
    # high (off), low (on), high (off); then close() releases the pin to an input, where an
    # active-low board's own pull-up decides: the reason docs/wiring.md prefers active-high
    assert [s.state for s in mock_pins.pin(17).states][:4] == [False, True, False, True]


def test_relay_not_switched_without_confirmation_or_with_no_relay(tmp_path: Path,
                                                                  mock_pins: Any) -> None:
    declined = doctor(make_config(), tmp_path, pin_factory=mock_pins, confirm=lambda q: False)
    assert declined.check_relay().ok is None
    skipped = doctor(make_config(), tmp_path, pin_factory=mock_pins, relay=False)
    assert skipped.check_relay().ok is None
    assert [s.state for s in mock_pins.pin(17).states] == [False]


@pytest.mark.broker
def test_broker_reachable(tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    result = doctor(make_config(url=mosquitto.url), tmp_path).check_broker()
    assert result.ok is True and "connected to 127.0.0.1" in result.message


@pytest.mark.broker
def test_broker_refuses_credentials(tmp_path: Path) -> None:
    with MosquittoProcess(allow_anonymous=False) as closed:
        result = doctor(make_config(url=closed.url), tmp_path).check_broker()
    assert result.ok is False and "refused the connection" in result.message
    assert "password" in result.hint


def test_broker_unreachable(tmp_path: Path) -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    result = doctor(make_config(url=url), tmp_path).check_broker()
    assert result.ok is False and "cannot reach" in result.message


@pytest.mark.parametrize(("probe", "ok"), [(True, True), (False, False), (None, False)])
def test_clock(tmp_path: Path, probe: bool | None, ok: bool) -> None:
    assert doctor(make_config(), tmp_path, clock_probe=lambda: probe).check_clock().ok is ok


def test_run_prints_every_check_and_fails_if_one_fails(tmp_path: Path, mock_pins: Any) -> None:
    lines: list[str] = []
    d = doctor(make_config(reader="sim"), tmp_path, pin_factory=mock_pins, relay=False)
    assert d.run(lines.append) is False  # the broker on port 1 is unreachable
    names = [line.split(":")[0] for line in lines if not line.startswith("    ")]
    assert names[:6] == ["- spi", "- gpio", "- reader", "- relay", "✗ broker", "✓ clock"]
    assert lines[-1] == "Some checks failed: see the hints above."


def test_a_crashing_check_is_reported_not_raised(tmp_path: Path) -> None:
    class Broken(Doctor):
        def checks(self) -> list[Any]:
            def check_boom() -> Result:
                raise RuntimeError("boom")
            return [check_boom]

    lines: list[str] = []
    assert Broken(make_config()).run(lines.append) is False
    assert lines[0] == "✗ boom: unexpected error: boom"


def test_cli_doctor_refuses_bad_config(tmp_path: Path) -> None:
    from fabpass.cli import main

    path = tmp_path / "n.toml"
    path.write_text(CONFIG.format(url="mqtt://x", reader="sim", active_high="maybe"))
    result = CliRunner().invoke(main, ["node", "doctor", "--config", str(path)])
    assert result.exit_code == 1
    assert result.output.startswith("✗ config: the file has problems:\n")
    assert f"{path}:9: toml: " in result.output


def test_session_running_follows_the_outbox_checkpoint(tmp_path: Path) -> None:
    """install-node.sh --upgrade waits on this: true from session.started to session.ended."""
    from datetime import UTC, datetime

    from controller.storage import Outbox
    from firmware_config.doctor import session_running

    config = tmp_path / "node.toml"
    config.write_text(f'node_id = "n"\n[storage]\ndir = "{tmp_path / "store"}"\n')
    assert session_running(config) is False  # the node never ran
    (tmp_path / "store").mkdir()
    outbox = Outbox(tmp_path / "store" / "outbox.db")
    ts = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    sid, stamp = "6f1c7a52-3c1e-4c55-9f57-0d1b2a3c4d5e", "2026-05-01T09:00:00Z"
    started = {"session": sid, "uid": "04AABBCC", "member": 1}
    outbox.add(node="n", boot="b", etype="session.started", data=started, ts=ts,
               checkpoint={**started, "started": stamp, "last_ts": stamp})
    assert session_running(config) is True  # read while the node holds the database open
    ended = {**started, "started": stamp, "ended": stamp, "duration_s": 0.0, "active_s": 0.0,
             "reason": "badge_out"}
    outbox.add(node="n", boot="b", etype="session.ended", data=ended, ts=ts,
               clear_checkpoint=True)
    assert session_running(config) is False
    outbox.close()
    assert session_running(tmp_path / "missing.toml") is False
