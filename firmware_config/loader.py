"""Read and validate a node config file: TOML → `NodeConfig`, or precise problems.

Every problem is one line `FILE:LINE: key: message` so a volunteer can go
straight to the line. tomllib gives no positions, so `key_lines` finds them by
scanning the text. Secrets (the MQTT password) never appear in a message.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from firmware_config.node_config import (
    ActivityConfig,
    ActuatorConfig,
    ConfigError,
    GpioConfig,
    MqttConfig,
    NodeConfig,
    PinConfig,
    ReaderConfig,
    SessionConfig,
    StorageConfig,
)
from firmware_config.schema import SCHEMA, Key

log = logging.getLogger(__name__)

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PASSWORD_ENV = "FABPASS_MQTT_PASSWORD"
USABLE_PINS = range(2, 28)  # BCM GPIO 2-27 on the 40-pin header
SPI0_PINS = {8: "SPI0 CE0", 9: "SPI0 MISO", 10: "SPI0 MOSI", 11: "SPI0 SCLK", 7: "SPI0 CE1"}
I2C_PINS = {2: "I2C1 SDA", 3: "I2C1 SCL"}


# --- where keys are --------------------------------------------------------------------------

def _split_key(text: str) -> list[str]:
    """`a."b.c".d` → ['a', 'b.c', 'd'] (whitespace and quotes stripped)."""
    parts: list[str] = []
    buf = ""
    quote = ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
            else:
                buf += ch
        elif ch in "\"'":
            quote = ch
        elif ch == ".":
            parts.append(buf.strip())
            buf = ""
        else:
            buf += ch
    parts.append(buf.strip())
    return parts


def _strip_comment(line: str) -> tuple[str, int]:
    """The line without its comment, and the bracket balance outside strings."""
    quote = ""
    depth = 0
    for i, ch in enumerate(line):
        if quote:
            if ch == "\\" and quote == '"':
                continue
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i], depth
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return line, depth


def key_lines(text: str) -> dict[str, int]:
    """Map dotted key paths (and every prefix) to the first line that defines them."""
    found: dict[str, int] = {}
    table: list[str] = []
    multiline: str | None = None
    depth = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if multiline:
            if raw.count(multiline) % 2 == 1:
                multiline = None
            continue
        line, balance = _strip_comment(raw)
        if depth > 0:
            depth += balance
            continue
        stripped = line.strip()
        if not stripped:
            continue
        header = re.match(r"^\[\[?\s*(.+?)\s*\]\]?$", stripped)
        if header and "=" not in stripped.split("]")[0]:
            table = _split_key(header.group(1))
            for i in range(1, len(table) + 1):
                found.setdefault(".".join(table[:i]), number)
            continue
        if "=" not in stripped:
            continue
        key_text, _, value = _key_value(stripped)
        path = table + _split_key(key_text)
        for i in range(len(table) + 1, len(path) + 1):
            found.setdefault(".".join(path[:i]), number)
        value = value.strip()
        for delim in ('"""', "'''"):
            if value.startswith(delim) and value.count(delim) == 1:
                multiline = delim
        if multiline is None:
            depth = max(0, _strip_comment(value)[1])
    return found


def _key_value(line: str) -> tuple[str, str, str]:
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "=":
            return line[:i], "=", line[i + 1:]
    return line, "", ""


class _Locator:
    def __init__(self, text: str) -> None:
        self.lines = key_lines(text)

    def line(self, path: str) -> int:
        """The line of `path`, else of its nearest enclosing key or table, else 1."""
        parts = path.split(".")
        while parts:
            number = self.lines.get(".".join(parts))
            if number is not None:
                return number
            parts.pop()
        return 1


# --- validation ------------------------------------------------------------------------------

@dataclass
class Report:
    """Problems (the file is refused) and notes (worth knowing, not fatal)."""

    filename: str
    locator: _Locator
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{self.filename}:{self.locator.line(path)}: {path}: {message}")

    def note(self, path: str, message: str) -> None:
        self.notes.append(f"{self.filename}:{self.locator.line(path)}: {path}: note: {message}")


_TYPE_NAMES = {str: "a string", bool: "a boolean (true or false)", int: "an integer",
               float: "a number", dict: "a table", list: "an array"}


def _type_name(value: Any) -> str:
    for typ, name in _TYPE_NAMES.items():
        if type(value) is typ:
            return name
    return type(value).__name__


def _check_value(key: Key, path: str, value: Any, report: Report) -> Any:
    """The cleaned value, or None after recording a problem."""
    if key.off and value is False:
        return None
    expected = {"str": "a string", "int": "an integer", "number": "a number",
                "bool": "a boolean (true or false)", "pin": "a pin number (integer)",
                "choice": "one of " + ", ".join(repr(c) for c in key.choices)}[key.kind]
    if key.off:
        expected += " or false"
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "pin": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "choice": True,
    }[key.kind]
    if not ok:
        report.problem(path, f"must be {expected}, not {_type_name(value)}")
        return None
    if key.kind == "choice" or key.choices:
        if value not in key.choices or type(value) is bool:
            report.problem(path, f"{value!r} is not allowed; expected one of "
                                 + ", ".join(repr(c) for c in key.choices)
                                 + _suggest(str(value), [str(c) for c in key.choices]))
            return None
    if key.kind == "pin":
        if value not in USABLE_PINS:
            report.problem(path, f"{value} is not a usable GPIO pin on a Raspberry Pi "
                                 "(BCM numbering, 2-27)")
            return None
    if key.minimum is not None and value < key.minimum:
        report.problem(path, f"{value} is below the minimum {key.minimum:g}")
        return None
    if key.maximum is not None and value > key.maximum:
        report.problem(path, f"{value} is above the maximum {key.maximum:g}")
        return None
    if key.slug and not SLUG.match(value):
        report.problem(path, f"{value!r} is not a slug (lowercase letters, digits and '-', "
                             "starting with a letter or digit, 1-63 characters)")
        return None
    return float(value) if key.kind == "number" else value


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_table(keys: dict[str, Key], prefix: str, data: dict[str, Any],
                 report: Report) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in data:
        path = f"{prefix}{name}"
        if name not in keys:
            report.problem(path, "unknown key" + _suggest(name, list(keys)))
    for name, key in keys.items():
        path = f"{prefix}{name}"
        if name not in data:
            if key.required:
                report.problem(path, _missing_message(path, key))
            elif key.kind == "table" and not key.optional_table:
                out[name] = _check_table(key.keys, f"{path}.", {}, report)
            else:
                out[name] = None if key.optional_table else key.default
            continue
        value = data[name]
        if key.kind == "table":
            if key.pin_shorthand and isinstance(value, int) and not isinstance(value, bool):
                value = {"pin": value}
            if not isinstance(value, dict):
                report.problem(path, f"must be a table, not {_type_name(value)}"
                               + (" (or a bare pin number)" if key.pin_shorthand else ""))
                out[name] = None
                continue
            out[name] = _check_table(key.keys, f"{path}.", value, report)
        else:
            out[name] = _check_value(key, path, value, report)
    return out


def _missing_message(path: str, key: Key) -> str:
    if path == "gpio.relay.active_high":
        return ("is required: say whether the relay board switches the machine on when the "
                "pin is high (true) or low (false); there is no default because a wrong guess "
                "leaves the machine powered (see docs/wiring.md)")
    if key.kind == "table":
        return f"required table [{path}] is missing"
    return "required key is missing"


def _cross_checks(cfg: dict[str, Any], report: Report, environ: dict[str, str]) -> None:
    reader = cfg.get("reader") or {}
    gpio = cfg.get("gpio") or {}
    mqtt = cfg.get("mqtt") or {}
    session = cfg.get("session") or {}

    # reader options
    if reader.get("type") == "keyboard" and not reader.get("device"):
        report.problem("reader.device", "is required when reader.type is 'keyboard': the "
                       "/dev/input/by-id/… path or part of the device name")

    _check_actuator(cfg, report)

    # pins: used twice, reserved
    used: dict[int, str] = {}
    pins: list[tuple[str, int]] = []
    if reader.get("type") == "mfrc522" and reader.get("reset_pin") is not None:
        pins.append(("reader.reset_pin", reader["reset_pin"]))
    for name in ("relay", "green_led", "red_led", "blue_led", "buzzer", "activity"):
        table = gpio.get(name)
        if isinstance(table, dict) and table.get("pin") is not None:
            pins.append((f"gpio.{name}.pin", table["pin"]))
    spi_reserved = dict(SPI0_PINS) if reader.get("type") == "mfrc522" else {}
    if reader.get("spi_device") != 1:
        spi_reserved.pop(7, None)
    if reader.get("spi_bus") not in (0, None):
        spi_reserved = {}
    for path, pin in pins:
        if pin in used:
            report.problem(path, f"pin {pin} is already used by {used[pin]}")
            continue
        used[pin] = path
        if pin in spi_reserved and path != "reader.reset_pin":
            report.problem(path, f"pin {pin} is {spi_reserved[pin]}, wired to the mfrc522 "
                                 "reader; choose another pin")
        elif pin in I2C_PINS:
            report.note(path, f"pin {pin} is {I2C_PINS[pin]} and has a fixed 1.8 kΩ pull-up "
                              "to 3.3 V: it reads high while nothing drives it")
    relay = gpio.get("relay")
    if isinstance(relay, dict) and relay.get("pin") in I2C_PINS and relay.get("active_high"):
        report.problem("gpio.relay.pin", f"pin {relay['pin']} is pulled up on the board, so an "
                       "active-high relay on it would switch on while the Pi boots")
    elif (isinstance(relay, dict) and isinstance(relay.get("pin"), int)
          and 4 <= relay["pin"] <= 8 and relay.get("active_high")):
        report.note("gpio.relay.pin", f"GPIO {relay['pin']} is pulled up while the Pi boots: "
                    "only the external 10 kΩ pull-down keeps the relay off (docs/wiring.md); "
                    "GPIO 9-27 are safer")

    # mqtt
    _check_mqtt_url(mqtt.get("url"), "mqtt.url", report)
    for name in ("tls_ca", "tls_cert", "tls_key"):
        file_path = mqtt.get(name)
        if isinstance(file_path, str) and not Path(file_path).is_file():
            report.problem(f"mqtt.{name}", f"file {file_path!r} does not exist")
    if mqtt.get("tls_key") and not mqtt.get("tls_cert"):
        report.problem("mqtt.tls_key", "is set without mqtt.tls_cert")
    if mqtt.get("password") is not None and mqtt.get("password_env"):
        report.problem("mqtt.password_env", "set either password or password_env, not both")
    env_name = mqtt.get("password_env")
    if isinstance(env_name, str):
        if env_name not in environ:
            report.problem("mqtt.password_env",
                           f"environment variable {env_name} is not set")
        else:
            mqtt["password"] = environ[env_name]
    elif mqtt.get("password") is None and PASSWORD_ENV in environ:
        mqtt["password"] = environ[PASSWORD_ENV]
    if mqtt.get("password") is not None and not mqtt.get("username"):
        report.problem("mqtt.username", "is required when a password is given")

    # session policy, with the protocol's own rules
    from protocol.errors import ProtocolError
    from protocol.messages import check_policy

    policy = {k: v for k, v in session.items() if k != "heartbeat_s"}
    try:
        check_policy(policy, "session")
    except ProtocolError as exc:
        report.problem("session", str(exc))


def _check_mqtt_url(url: Any, path: str, report: Report) -> None:
    if not isinstance(url, str):
        return
    parsed = urlparse(url)
    if parsed.scheme not in ("mqtt", "mqtts"):
        report.problem(path, f"scheme {parsed.scheme or '(none)'!r} is not supported; "
                             "use mqtt://host:port or mqtts://host:port")
    elif not parsed.hostname:
        report.problem(path, "has no host name")
    else:
        try:
            parsed.port  # noqa: B018 - validates the port
        except ValueError:
            report.problem(path, "has a bad port number")
        if parsed.password:
            report.problem(path, "contains a password: put it in password_env or "
                                 f"{PASSWORD_ENV} instead")


_TOPIC_FORBIDDEN = re.compile(r"[+#\s\x00]")


def _check_actuator(cfg: dict[str, Any], report: Report) -> None:
    """A plug needs its device; the relay is required only when the relay is the actuator."""
    actuator = cfg.get("actuator") or {}
    gpio = cfg.get("gpio") or {}
    kind = actuator.get("type")
    if kind == "gpio":
        if gpio.get("relay") is None and not any(": gpio.relay" in p for p in report.problems):
            report.problem("gpio.relay", "required table [gpio.relay] is missing (the relay "
                                         "that powers the machine), unless actuator.type names "
                                         "a smart plug")
        return
    if kind is None:  # an invalid type was reported already
        return
    device = actuator.get("device")
    if device is None:
        report.problem("actuator.device", f"is required when actuator.type is {kind!r}: the "
                       + ("plug's MQTT topic prefix" if kind == "shelly" else "plug's %topic%"))
    elif (not device or _TOPIC_FORBIDDEN.search(device) or device.startswith("/")
          or device.endswith("/") or (kind == "tasmota" and "/" in device)):
        report.problem("actuator.device", f"{device!r} is not a usable MQTT topic part (not "
                       "empty, no spaces, '+' or '#'" + (", no '/'" if kind == "tasmota" else "")
                       + ")")
    _check_mqtt_url(actuator.get("mqtt_url"), "actuator.mqtt_url", report)
    busy, idle = actuator.get("busy_above_w"), actuator.get("idle_below_w")
    if busy is not None and idle is not None and idle > busy:
        report.problem("actuator.idle_below_w", f"{idle:g} W is above busy_above_w "
                       f"({busy:g} W): the idle threshold must not exceed the busy one")
    if gpio.get("relay") is not None:
        report.note("gpio.relay", f"ignored: the {kind} plug switches the machine ([actuator])")
        gpio["relay"] = None


def _build(cfg: dict[str, Any], source: str | None) -> NodeConfig:
    def pin(table: dict[str, Any] | None) -> PinConfig | None:
        return PinConfig(**table) if table else None

    gpio = cfg["gpio"]
    actuator = ActuatorConfig(**cfg["actuator"])
    relay = PinConfig(**gpio["relay"]) if gpio["relay"] and not actuator.is_plug else None
    return NodeConfig(
        node_id=cfg["node_id"], site=cfg["site"],
        mqtt=MqttConfig(**cfg["mqtt"]),
        reader=ReaderConfig(**cfg["reader"]),
        gpio=GpioConfig(
            relay=relay, green_led=pin(gpio["green_led"]), red_led=pin(gpio["red_led"]),
            blue_led=pin(gpio["blue_led"]), buzzer=pin(gpio["buzzer"]),
            activity=ActivityConfig(**gpio["activity"]) if gpio["activity"] else None,
        ),
        storage=StorageConfig(**cfg["storage"]),
        session=SessionConfig(**cfg["session"]),
        actuator=actuator,
        topic_root=cfg["topic_root"], log_level=cfg["log_level"], source=source,
    )


def validate_text(text: str, filename: str = "<config>",
                  environ: dict[str, str] | None = None) -> tuple[NodeConfig | None, Report]:
    """Parse and check `text`; the config is None when there is any problem."""
    report = Report(filename, _Locator(text))
    env = dict(os.environ if environ is None else environ)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"line (\d+)", message)
        if match:
            line = int(match.group(1))
        else:  # "(at end of document)"
            line = max(1, len(text.splitlines()))
        report.problems.append(f"{filename}:{line}: toml: {message}")
        return None, report
    cfg = _check_table(SCHEMA, "", data, report)
    _cross_checks(cfg, report, env)
    if report.problems:
        report.problems.sort(key=_line_of)
        return None, report
    return _build(cfg, filename), report


def _line_of(problem: str) -> int:
    match = re.match(r"^.*?:(\d+): ", problem)
    return int(match.group(1)) if match else 0


def load_node_config(path: str | Path, environ: dict[str, str] | None = None) -> NodeConfig:
    """The validated config of `path`; raises ConfigError with `FILE:LINE: key: message` lines."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}:0: file: cannot be read: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}:1: file: is not UTF-8 text"]) from exc
    config, report = validate_text(text, str(path), environ)
    for note in report.notes:
        log.info("%s", note)
    if config is None:
        raise ConfigError(report.problems)
    return config


def check_file(path: str | Path, environ: dict[str, str] | None = None) -> list[str]:
    """`fabpass config check`: the problems of `path` (empty when it is valid)."""
    try:
        load_node_config(path, environ)
    except ConfigError as exc:
        return exc.problems
    return []
