"""The [actuator] table: a plug needs no relay, and every mistake names its line."""

from __future__ import annotations

from firmware_config import validate_text

BASE = """\
node_id = "printer-1"
site = "lab"

[reader]
type = "sim"

[storage]
dir = "/tmp/x"
"""

PLUG = BASE + """
[actuator]
type = "shelly"
device = "shellyplugsg3-a1b2c3d4e5f6"
channel = 0
lease_s = 60
"""


def check(text: str) -> tuple[object, list[str], list[str]]:
    cfg, report = validate_text(text, "n.toml", {})
    return cfg, report.problems, report.notes


def test_contract_plug_example_needs_no_gpio() -> None:
    cfg, problems, _ = check(PLUG)
    assert problems == []
    act = cfg.actuator  # type: ignore[attr-defined]
    assert (act.type, act.device, act.channel, act.lease_s, act.mqtt_url) == (
        "shelly", "shellyplugsg3-a1b2c3d4e5f6", 0, 60, None)
    assert cfg.gpio.relay is None  # type: ignore[attr-defined]


def test_relay_next_to_a_plug_is_ignored_with_a_note_and_frees_its_pin() -> None:
    text = PLUG + '\n[gpio]\nrelay = { pin = 17, active_high = true }\nbuzzer = 17\n'
    cfg, problems, notes = check(text)
    assert problems == []
    assert cfg.gpio.relay is None and cfg.gpio.buzzer.pin == 17  # type: ignore[attr-defined]
    assert any("gpio.relay: note: ignored" in n for n in notes)


def test_without_a_plug_the_relay_is_still_required() -> None:
    _, problems, _ = check(BASE)
    assert problems == ["n.toml:1: gpio.relay: required table [gpio.relay] is missing (the relay "
                        "that powers the machine), unless actuator.type names a smart plug"]
    _, problems, _ = check(BASE + '\n[gpio]\nrelay = { pin = 17 }\n')
    assert len(problems) == 1 and "gpio.relay.active_high: is required" in problems[0]


def test_plug_mistakes_name_their_line() -> None:
    text = BASE + '\n[actuator]\ntype = "tasmota"\nlease_s = 5\nchannel = -1\n'
    _, problems, _ = check(text)
    assert problems == [
        "n.toml:10: actuator.device: is required when actuator.type is 'tasmota': the plug's "
        "%topic%",
        "n.toml:12: actuator.lease_s: 5 is below the minimum 10",
        "n.toml:13: actuator.channel: -1 is below the minimum 0",
    ]
    _, problems, _ = check(PLUG.replace('lease_s = 60', 'lease_s = 301'))
    assert problems == ["n.toml:14: actuator.lease_s: 301 is above the maximum 300"]


def test_bad_device_type_and_url() -> None:
    _, problems, _ = check(PLUG.replace('"shellyplugsg3-a1b2c3d4e5f6"', '"plugs/#"'))
    assert len(problems) == 1 and problems[0].startswith("n.toml:12: actuator.device: 'plugs/#'")
    _, problems, _ = check(PLUG.replace('type = "shelly"', 'type = "shelley"'))
    assert problems == ["n.toml:11: actuator.type: 'shelley' is not allowed; expected one of "
                        "'gpio', 'shelly', 'tasmota' (did you mean 'shelly'?)"]
    _, problems, _ = check(PLUG + 'mqtt_url = "http://broker"\n')
    assert problems == ["n.toml:15: actuator.mqtt_url: scheme 'http' is not supported; use "
                        "mqtt://host:port or mqtts://host:port"]
    _, problems, _ = check(PLUG + 'busy_above_w = 10\nidle_below_w = 20\n')
    assert len(problems) == 1 and "idle_below_w: 20 W is above busy_above_w" in problems[0]
