"""Node config validation: each kind of problem gives its documented line, key and message."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from firmware_config import ConfigError, load_node_config, validate_text
from firmware_config.loader import key_lines
from firmware_config.provisioning import preset_names, preset_text

MINIMAL = """\
node_id = "laser-1"
site = "lab"

[mqtt]
url = "mqtt://127.0.0.1:1883"

[reader]
type = "sim"

[gpio]
relay = { pin = 17, active_high = true }

[storage]
dir = "/var/lib/fabpass/laser-1"
"""


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    cfg, report = validate_text(text, "n.toml", environ or {})
    assert cfg is None, "expected the config to be refused"
    return report.problems


def with_lines(text: str, **replace: str) -> str:
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return text


def test_contract_minimal_file_loads_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text(MINIMAL)
    cfg = load_node_config(path, environ={})
    assert (cfg.node_id, cfg.site, cfg.topic_root) == ("laser-1", "lab", "fabpass")
    assert cfg.gpio.relay.pin == 17 and cfg.gpio.relay.active_high is True
    assert cfg.gpio.buzzer is None and cfg.gpio.activity is None
    assert cfg.reader.type == "sim" and cfg.reader.poll_hz == 20.0
    assert cfg.session.mode == "tap" and cfg.session.grace_s == 10
    assert cfg.mqtt.protocol == "5" and cfg.mqtt.password is None
    assert cfg.storage.dir == "/var/lib/fabpass/laser-1"
    assert cfg.source == str(path)


def test_unknown_key_with_suggestion() -> None:
    text = MINIMAL.replace('type = "sim"', 'type = "sim"\nformt = "hex"')
    assert problems(text) == ["n.toml:9: reader.formt: unknown key (did you mean 'format'?)"]


def test_unknown_top_level_key_without_close_match() -> None:
    assert problems("colour = 3\n" + MINIMAL) == ["n.toml:1: colour: unknown key"]


def test_unknown_table() -> None:
    text = MINIMAL + "\n[sesion]\nmode = \"tap\"\n"
    assert problems(text) == ["n.toml:16: sesion: unknown key (did you mean 'session'?)"]


def test_wrong_type() -> None:
    text = MINIMAL.replace("pin = 17", 'pin = "17"')
    assert problems(text) == [
        "n.toml:11: gpio.relay.pin: must be a pin number (integer), not a string"]


def test_wrong_type_boolean() -> None:
    text = MINIMAL + "\n[session]\nhandover = \"yes\"\n"
    assert problems(text) == [
        "n.toml:17: session.handover: must be a boolean (true or false), not a string"]


def test_missing_required_key() -> None:
    text = MINIMAL.replace('site = "lab"\n', "")
    assert problems(text) == ["n.toml:1: site: required key is missing"]


def test_missing_required_key_in_table_points_at_table() -> None:
    text = MINIMAL.replace('dir = "/var/lib/fabpass/laser-1"\n', "")
    assert problems(text) == ["n.toml:13: storage.dir: required key is missing"]


def test_missing_required_table() -> None:
    text = MINIMAL.replace('[reader]\ntype = "sim"\n', "")
    assert problems(text) == ["n.toml:1: reader: required table [reader] is missing"]


def test_relay_without_active_high() -> None:
    text = MINIMAL.replace("relay = { pin = 17, active_high = true }", "relay = { pin = 17 }")
    (line,) = problems(text)
    assert line.startswith("n.toml:11: gpio.relay.active_high: is required: say whether the "
                           "relay board switches the machine on when the pin is high (true) "
                           "or low (false)")


def test_relay_as_bare_pin_is_refused() -> None:
    text = MINIMAL.replace("relay = { pin = 17, active_high = true }", "relay = 17")
    assert problems(text) == ["n.toml:11: gpio.relay: must be a table, not an integer"]


def test_pin_not_gpio() -> None:
    text = MINIMAL.replace("pin = 17", "pin = 28")
    assert problems(text) == [
        "n.toml:11: gpio.relay.pin: 28 is not a usable GPIO pin on a Raspberry Pi "
        "(BCM numbering, 2-27)"]


def test_pin_used_twice() -> None:
    text = MINIMAL.replace("relay = { pin = 17, active_high = true }",
                           "relay = { pin = 17, active_high = true }\nbuzzer = 17")
    assert problems(text) == ["n.toml:12: gpio.buzzer.pin: pin 17 is already used by "
                              "gpio.relay.pin"]


def test_pin_reserved_by_spi_reader() -> None:
    text = MINIMAL.replace('type = "sim"', 'type = "mfrc522"').replace("pin = 17", "pin = 10")
    assert problems(text) == ["n.toml:11: gpio.relay.pin: pin 10 is SPI0 MOSI, wired to the "
                              "mfrc522 reader; choose another pin"]


def test_ce1_reserved_only_with_spi_device_1() -> None:
    text = MINIMAL.replace('type = "sim"', 'type = "mfrc522"\nspi_device = 1')
    text = text.replace("relay = { pin = 17, active_high = true }",
                        "relay = { pin = 17, active_high = true }\nbuzzer = 7")
    assert problems(text) == ["n.toml:13: gpio.buzzer.pin: pin 7 is SPI0 CE1, wired to the "
                              "mfrc522 reader; choose another pin"]
    ok, _ = validate_text(text.replace("spi_device = 1", "spi_device = 0"), "n.toml", {})
    assert ok is not None


def test_reset_pin_counts_as_used() -> None:
    text = MINIMAL.replace('type = "sim"', 'type = "mfrc522"').replace("pin = 17", "pin = 25")
    assert problems(text) == ["n.toml:11: gpio.relay.pin: pin 25 is already used by "
                              "reader.reset_pin"]


def test_i2c_pin_is_a_note_not_a_problem() -> None:
    text = MINIMAL.replace("relay = { pin = 17, active_high = true }",
                           "relay = { pin = 17, active_high = true }\nbuzzer = 3")
    cfg, report = validate_text(text, "n.toml", {})
    assert cfg is not None and cfg.gpio.buzzer is not None and cfg.gpio.buzzer.pin == 3
    assert report.notes == ["n.toml:12: gpio.buzzer.pin: note: pin 3 is I2C1 SCL and has a "
                            "fixed 1.8 kΩ pull-up to 3.3 V: it reads high while nothing "
                            "drives it"]


def test_relay_on_boot_pull_up_pin_is_noted() -> None:
    cfg, report = validate_text(MINIMAL.replace("pin = 17", "pin = 5"), "n.toml", {})
    assert cfg is not None
    assert report.notes == ["n.toml:11: gpio.relay.pin: note: GPIO 5 is pulled up while the Pi "
                            "boots: only the external 10 kΩ pull-down keeps the relay off "
                            "(docs/wiring.md); GPIO 9-27 are safer"]


def test_active_high_relay_on_pulled_up_pin_is_refused() -> None:
    text = MINIMAL.replace("pin = 17", "pin = 2")
    assert problems(text) == ["n.toml:11: gpio.relay.pin: pin 2 is pulled up on the board, so "
                              "an active-high relay on it would switch on while the Pi boots"]


def test_keyboard_reader_without_device() -> None:
    text = MINIMAL.replace('type = "sim"', 'type = "keyboard"')
    assert problems(text) == ["n.toml:7: reader.device: is required when reader.type is "
                              "'keyboard': the /dev/input/by-id/… path or part of the device "
                              "name"]


def test_bad_reader_format() -> None:
    text = MINIMAL.replace('type = "sim"',
                           'type = "keyboard"\ndevice = "RFID"\nformat = "decimal-reversed"')
    assert problems(text) == [
        "n.toml:10: reader.format: 'decimal-reversed' is not allowed; expected one of 'hex', "
        "'hex_reversed', 'decimal', 'decimal_reversed' (did you mean 'decimal_reversed'?)"]


def test_bad_slug() -> None:
    text = MINIMAL.replace('"laser-1"', '"Laser 1"', 1)
    assert problems(text) == ["n.toml:1: node_id: 'Laser 1' is not a slug (lowercase letters, "
                              "digits and '-', starting with a letter or digit, 1-63 "
                              "characters)"]


def test_mqtt_url_scheme() -> None:
    text = MINIMAL.replace("mqtt://127.0.0.1:1883", "http://127.0.0.1:1883")
    assert problems(text) == ["n.toml:5: mqtt.url: scheme 'http' is not supported; use "
                              "mqtt://host:port or mqtts://host:port"]


def test_mqtt_url_with_password_refused_without_echoing_it() -> None:
    text = MINIMAL.replace("mqtt://127.0.0.1:1883", "mqtt://u:hunter2@127.0.0.1:1883")
    found = problems(text)
    assert found == ["n.toml:5: mqtt.url: contains a password: put it in password_env or "
                     "FABPASS_MQTT_PASSWORD instead"]
    assert "hunter2" not in "".join(found)


def test_tls_file_missing(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    text = MINIMAL.replace('url = "mqtt://127.0.0.1:1883"',
                           f'url = "mqtts://broker.lan"\ntls_ca = "{missing}"')
    assert problems(text) == [f"n.toml:6: mqtt.tls_ca: file '{missing}' does not exist"]


def test_session_value_out_of_range() -> None:
    text = MINIMAL + "\n[session]\ngrace_s = -1\nheartbeat_s = 1\n"
    assert problems(text) == ["n.toml:17: session.grace_s: -1 is below the minimum 0",
                              "n.toml:18: session.heartbeat_s: 1 is below the minimum 5"]


def test_session_bad_choice_and_false_switches_off() -> None:
    text = MINIMAL + '\n[session]\npower_off = "idle"\nwarn_before_s = false\n'
    assert problems(text) == [
        "n.toml:17: session.power_off: 'idle' is not allowed; expected one of 'immediate', "
        "'when_idle' (did you mean 'when_idle'?)"]
    cfg, _ = validate_text(text.replace('"idle"', '"when_idle"'), "n.toml", {})
    assert cfg is not None
    assert cfg.session.warn_before_s is None and cfg.session.power_off == "when_idle"


def test_toml_syntax_error_gives_its_line() -> None:
    text = MINIMAL.replace('type = "sim"', 'type = "sim')
    (line,) = problems(text)
    assert line.startswith("n.toml:8: toml: ")


def test_password_env_resolved_and_never_shown() -> None:
    text = MINIMAL.replace('url = "mqtt://127.0.0.1:1883"',
                           'url = "mqtt://127.0.0.1:1883"\nusername = "laser-1"\n'
                           'password_env = "LASER_PW"')
    cfg, _ = validate_text(text, "n.toml", {"LASER_PW": "s3cret-value"})
    assert cfg is not None and cfg.mqtt.password == "s3cret-value"
    assert "s3cret-value" not in repr(cfg) and "s3cret-value" not in str(cfg)
    assert problems(text, {}) == ["n.toml:7: mqtt.password_env: environment variable "
                                  "LASER_PW is not set"]


def test_default_password_variable() -> None:
    text = MINIMAL.replace('url = "mqtt://127.0.0.1:1883"',
                           'url = "mqtt://127.0.0.1:1883"\nusername = "laser-1"')
    cfg, _ = validate_text(text, "n.toml", {"FABPASS_MQTT_PASSWORD": "pw"})
    assert cfg is not None and cfg.mqtt.password == "pw"


def test_password_without_username() -> None:
    text = MINIMAL.replace('url = "mqtt://127.0.0.1:1883"',
                           'url = "mqtt://127.0.0.1:1883"\npassword = "top-secret"')
    found = problems(text)
    assert found == ["n.toml:4: mqtt.username: is required when a password is given"]
    assert "top-secret" not in "".join(found)


def test_several_problems_sorted_by_line() -> None:
    text = MINIMAL.replace('"lab"', '"Lab"').replace("pin = 17", "pin = 99")
    assert [p.split(":")[1] for p in problems(text)] == ["2", "11"]


def test_key_lines_tables_dotted_and_inline() -> None:
    text = ('a = 1\n[gpio]\nrelay = { pin = 17, active_high = true }\n'
            'buzzer.pin = 4\n"quoted.key" = 2\n[gpio.activity]  # comment\npin = 5\n'
            's = """\nfoo = 1\n"""\narr = [\n 1,\n 2,\n]\nlast = 3\n')
    lines = key_lines(text)
    assert lines["a"] == 1 and lines["gpio"] == 2 and lines["gpio.relay"] == 3
    assert lines["gpio.buzzer"] == 4 and lines["gpio.buzzer.pin"] == 4
    assert lines["gpio.quoted.key"] == 5 and lines["gpio.activity.pin"] == 7
    assert "gpio.activity.foo" not in lines and lines["gpio.activity.last"] == 15


def test_load_node_config_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(MINIMAL.replace("pin = 17", "pin = 1"))
    with pytest.raises(ConfigError) as info:
        load_node_config(path, environ={})
    assert info.value.problems == [f"{path}:11: gpio.relay.pin: 1 is not a usable GPIO pin on "
                                   "a Raspberry Pi (BCM numbering, 2-27)"]


@pytest.mark.parametrize("name", preset_names())
def test_presets_are_valid(name: str) -> None:
    header = MINIMAL.split("[reader]")[0] + '[storage]\ndir = "/tmp/x"\n\n'
    cfg, report = validate_text(header + preset_text(name), name, {})
    assert cfg is not None, report.problems
    assert cfg.reader.type == "mfrc522" and cfg.gpio.relay.active_high is True


def test_presets_cover_both_setups() -> None:
    assert set(preset_names()) >= {"mfrc522-relay-rgb-buzzer",
                                   "mfrc522-relay-rgb-buzzer-activity"}


def test_cli_config_check(tmp_path: Path) -> None:
    from fabpass.cli import main

    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(MINIMAL)
    bad.write_text(MINIMAL.replace("pin = 17", "pin = 30").replace('"lab"', '"LAB"'))
    runner = CliRunner()
    ok = runner.invoke(main, ["config", "check", str(good)])
    assert ok.exit_code == 0 and ok.output == f"{good}: ok\n"
    fail = runner.invoke(main, ["config", "check", str(bad)])
    assert fail.exit_code == 1
    assert fail.output.splitlines() == [
        f"{bad}:2: site: 'LAB' is not a slug (lowercase letters, digits and '-', starting with "
        "a letter or digit, 1-63 characters)",
        f"{bad}:11: gpio.relay.pin: 30 is not a usable GPIO pin on a Raspberry Pi (BCM "
        "numbering, 2-27)"]
    missing = runner.invoke(main, ["config", "check", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 1 and "nope.toml:0: file: cannot be read" in missing.output
