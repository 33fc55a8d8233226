"""`fabpass node doctor`: check a node's hardware, broker and clock in plain words.

Each check gives one ✓/✗ line with a hint a volunteer can act on. Hardware
access goes through gpiozero's pin factory and the badge_reader package, so
tests run every check against MockFactory and a fake MFRC522. When the SPI bus
or the GPIO chip is missing altogether (SPI off, or not a Raspberry Pi), the
checks that need them say so instead of printing a library's error.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware_config.node_config import NodeConfig

log = logging.getLogger(__name__)

KNOWN_VERSIONS = {0x91: "MFRC522 v1.0", 0x92: "MFRC522 v2.0", 0x88: "FM17522 clone",
                  0x12: "clone", 0xB2: "FM17522 clone"}
RELAY_ON_S = 0.5
UNIT = "fabpass-node.service"
STOP_HINT = f"stop the node service first: `sudo systemctl stop {UNIT}`"


@dataclass
class Result:
    name: str
    ok: bool | None  # None: skipped
    message: str
    hint: str = ""

    def lines(self) -> list[str]:
        mark = {True: "✓", False: "✗", None: "-"}[self.ok]
        out = [f"{mark} {self.name}: {self.message}"]
        if self.hint:
            out.append(f"    hint: {self.hint}")
        return out


class Doctor:
    """Runs the checks; every hardware/OS access can be replaced for tests."""

    def __init__(
        self,
        cfg: NodeConfig,
        *,
        confirm: Callable[[str], bool] | None = None,
        relay: bool = True,
        timeout: float = 5.0,
        dev_dir: str | Path = "/dev",
        pin_factory: Any = None,
        raspi_config: Callable[[], bool] | None = None,
        reader_factory: Callable[[], Any] | None = None,
        clock_probe: Callable[[], bool | None] | None = None,
        badge_wait_s: float = 2.0,
    ) -> None:
        self.cfg = cfg
        self.confirm = confirm
        self.relay = relay
        self.timeout = timeout
        self.dev_dir = Path(dev_dir)
        self.pin_factory = pin_factory
        self.has_raspi_config = raspi_config or (lambda: shutil.which("raspi-config") is not None)
        self.reader_factory = reader_factory
        self.clock_probe = clock_probe or ntp_synchronized
        self.badge_wait_s = badge_wait_s

    def checks(self) -> list[Callable[[], Result]]:
        return [self.check_spi, self.check_gpio, self.check_reader, self.check_relay,
                self.check_broker, self.check_clock]

    def run(self, echo: Callable[[str], Any]) -> bool:
        """Run every check, print its lines as it finishes; True when none failed."""
        ok = True
        for check in self.checks():
            try:
                result = check()
            except Exception as exc:  # a check must never hide the ones after it
                log.debug("check failed", exc_info=True)
                result = Result(check.__name__.removeprefix("check_"), False,
                                f"unexpected error: {exc}")
            for line in result.lines():
                echo(line)
            ok = ok and result.ok is not False
        echo("All checks passed." if ok else "Some checks failed: see the hints above.")
        return ok

    # -- checks ---------------------------------------------------------------------------

    def _spi_device(self) -> Path:
        r = self.cfg.reader
        return self.dev_dir / f"spidev{r.spi_bus}.{r.spi_device}"

    def _gpio_chips(self) -> list[Path]:
        return sorted(self.dev_dir.glob("gpiochip*"))

    def _needs_gpio(self) -> bool:
        """Pins are needed unless every output is simulated away (a test double factory)."""
        return self.pin_factory is None

    def check_spi(self) -> Result:
        r = self.cfg.reader
        if r.type != "mfrc522":
            return Result("spi", None, f"not needed for a {r.type} reader")
        dev = self._spi_device()
        if dev.exists():
            return Result("spi", True, f"{dev} is present")
        if self.has_raspi_config():
            return Result("spi", False, f"SPI is off: {dev} does not exist",
                          "switch SPI on: `sudo raspi-config nonint do_spi 0`, then "
                          "`sudo reboot`")
        return Result("spi", False, f"no SPI bus here: {dev} does not exist, and this system has "
                      "no raspi-config (it is not Raspberry Pi OS)",
                      "on a Raspberry Pi, add `dtparam=spi=on` to /boot/firmware/config.txt and "
                      "reboot; elsewhere the reader cannot work")

    def check_gpio(self) -> Result:
        if not self._needs_gpio():
            return Result("gpio", None, "simulated pins: nothing to check")
        chips = self._gpio_chips()
        if chips:
            return Result("gpio", True, f"{', '.join(str(c) for c in chips)} present")
        return Result("gpio", False, f"no GPIO here: {self.dev_dir / 'gpiochip0'} does not exist",
                      "this is not a Raspberry Pi, or a container without its devices: the "
                      "relay, LEDs and buzzer need a Pi's GPIO pins")

    def check_reader(self) -> Result:
        r = self.cfg.reader
        if r.type == "sim":
            return Result("reader", None, "simulated reader: nothing to check")
        if (r.type == "mfrc522" and self.reader_factory is None
                and not self._spi_device().exists()):
            return Result("reader", None, "not tested: there is no SPI bus (see spi above)")
        try:
            reader = self._open_reader()
        except Exception as exc:
            hint = ("check the wiring (docs/wiring.md), 3.3 V (not 5 V) and that the node "
                    f"service is stopped: `sudo systemctl stop {UNIT}`")
            if r.type == "keyboard":
                hint = ("check reader.device (`ls /dev/input/by-id/`) and that the user is in "
                        "the `input` group")
            return Result("reader", False, f"cannot open the {r.type} reader: {exc}", hint)
        try:
            version = getattr(reader, "version", None)
            what = (f"{KNOWN_VERSIONS.get(version, 'unknown chip')} (version {version:#04x})"
                    if isinstance(version, int) else f"{r.type} reader")
            uid = self._wait_badge(reader)
        finally:
            reader.close()
        if uid:
            return Result("reader", True, f"{what} answers; badge {uid} read")
        return Result("reader", True, f"{what} answers; no badge held on it",
                      f"hold a badge on the reader while the doctor runs to test reading "
                      f"(it waits {self.badge_wait_s:g} s)")

    def _open_reader(self) -> Any:
        if self.reader_factory is not None:
            return self.reader_factory()
        from badge_reader import make_reader

        return make_reader(self.cfg.reader, simulate=False, pin_factory=self.pin_factory)

    def _wait_badge(self, reader: Any) -> str | None:
        deadline = time.monotonic() + self.badge_wait_s
        period = 1.0 / max(self.cfg.reader.poll_hz, 1.0)
        while True:
            uid = reader.poll()
            if uid:
                return str(uid)
            if time.monotonic() >= deadline:
                return None
            time.sleep(period)

    def check_relay(self) -> Result:
        relay = self.cfg.gpio.relay
        if relay is None:
            return Result("relay", None, f"no relay: the {self.cfg.actuator.type} plug "
                          f"{self.cfg.actuator.device!r} switches the machine")
        if not self.relay:
            return Result("relay", None, "click test skipped (--no-relay)")
        if self._needs_gpio() and not self._gpio_chips():
            return Result("relay", None, "not tested: there are no GPIO pins (see gpio above)")
        level = "high" if relay.active_high else "low"
        question = (f"The relay on GPIO {relay.pin} (on when {level}) will switch the machine ON "
                    f"for {RELAY_ON_S:g} s. Is that safe now?")
        if self.confirm is not None and not self.confirm(question):
            return Result("relay", None, "click test skipped (not confirmed)",
                          "run again and answer y, or pass --yes")
        from gpiozero import DigitalOutputDevice

        try:
            device = DigitalOutputDevice(relay.pin, active_high=relay.active_high,
                                         initial_value=False, pin_factory=self.pin_factory)
        except Exception as exc:
            return Result("relay", False, f"cannot drive GPIO {relay.pin}: {exc}",
                          f"{STOP_HINT}, and check that the user is in the `gpio` group")
        try:
            device.on()
            time.sleep(RELAY_ON_S)
            device.off()
        finally:
            device.close()
        return Result("relay", True, f"switched GPIO {relay.pin} on and off again",
                      "you should have heard one click; if not, check the relay's power and "
                      "gpio.relay.active_high")

    def check_broker(self) -> Result:
        from protocol.mqttclient import make_client, parse_mqtt_url

        m = self.cfg.mqtt
        target = parse_mqtt_url(m.url)
        where = f"{target.host}:{target.port}"
        client = make_client(f"{self.cfg.node_id}-doctor", target, protocol=m.protocol,
                             username=m.username, password=m.password, tls_ca=m.tls_ca,
                             tls_cert=m.tls_cert, tls_key=m.tls_key)
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
            outcome["reason"] = reason
            done.set()

        client.on_connect = on_connect
        try:
            client.connect(target.host, target.port, keepalive=max(5, int(self.timeout) + 5))
        except OSError as exc:
            return Result("broker", False, f"cannot reach {where}: {exc}",
                          "check mqtt.url, the network and that Mosquitto runs on the broker")
        client.loop_start()
        try:
            if not done.wait(self.timeout):
                return Result("broker", False, f"no answer from {where} within "
                                               f"{self.timeout:g} s",
                              "check the port and the firewall; mqtts:// needs port 8883")
        finally:
            client.disconnect()
            client.loop_stop()
        reason = outcome["reason"]
        if not reason.is_failure:
            return Result("broker", True, f"connected to {where} as {m.username or 'anonymous'}")
        return Result("broker", False, f"{where} refused the connection: {reason}",
                      "check mqtt.username and the password (FABPASS_MQTT_PASSWORD); on the "
                      "server run `fabpass broker config` and reload Mosquitto")

    def check_clock(self) -> Result:
        synced = self.clock_probe()
        if synced:
            return Result("clock", True, "synchronised with NTP")
        if synced is None:
            return Result("clock", False, "cannot tell whether the clock is synchronised",
                          "install systemd-timesyncd (or chrony) and check `timedatectl`")
        return Result("clock", False, "not synchronised",
                      "the node works offline, but times in reports may be skewed: check "
                      "network access to an NTP server and `timedatectl`")


def ntp_synchronized() -> bool | None:
    """True/False from timedatectl, else from timesyncd's flag file; None if unknown."""
    if shutil.which("timedatectl"):
        try:
            out = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                                 capture_output=True, text=True, timeout=5, check=False)
            value = out.stdout.strip()
            if value in ("yes", "no"):
                return value == "yes"
        except (OSError, subprocess.TimeoutExpired):
            log.debug("timedatectl failed", exc_info=True)
    flag = Path("/run/systemd/timesync/synchronized")
    if flag.exists():
        return True
    return None


def session_running(config_path: str | Path) -> bool:
    """True while the node of this config has a session open (`install-node.sh --upgrade`).

    The node stores its session checkpoint in the outbox in the same transaction as
    `session.started` and deletes it with `session.ended` (controller/storage.py), so the row
    is there exactly while a session is open, crash included (the next start closes it as
    `power_loss`). Read-only: the running node keeps writing; WAL lets both work at once.
    """
    try:
        with open(config_path, "rb") as fh:
            storage = tomllib.load(fh).get("storage", {})
    except (OSError, tomllib.TOMLDecodeError):
        return False
    directory = storage.get("dir") if isinstance(storage, dict) else None
    if not isinstance(directory, str):
        return False
    outbox = Path(directory) / "outbox.db"
    if not outbox.exists():
        return False
    try:
        db = sqlite3.connect(f"{outbox.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            row = db.execute("SELECT count(*) FROM checkpoint").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        log.debug("cannot read %s: %s", outbox, exc)
        return False
    return bool(row and row[0])
