"""The node config schema: every key with its type, default and description.

One table drives the validator (`firmware_config.loader`) and the reference
page (`firmware_config.docgen` → docs/configuration.md), so the two cannot
drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Key:
    """One config key. `kind`: str, int, number, bool, choice, pin, table."""

    kind: str
    help: str
    default: Any = None
    choices: tuple[Any, ...] = ()
    off: bool = False  # `false` switches the feature off (stored as None)
    minimum: float | None = None
    maximum: float | None = None
    slug: bool = False
    keys: dict[str, Key] = field(default_factory=dict)  # kind == "table"
    pin_shorthand: bool = False  # a table that may be written as a bare pin number
    optional_table: bool = False  # a table that is absent (None) unless written
    secret: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def _output_pin(what: str, *, active_high_required: bool = False) -> Key:
    active_high = (
        Key("bool", "true: the relay board switches on when the pin is high; false: on when low. "
                    "Required: this is a safety choice (see docs/wiring.md)", default=REQUIRED)
        if active_high_required
        else Key("bool", "true: on when the pin is high; false: on when low", default=True)
    )
    return Key(
        "table", what, optional_table=True, pin_shorthand=not active_high_required,
        keys={"pin": Key("pin", "BCM GPIO number (2-27)", default=REQUIRED),
              "active_high": active_high},
    )


SECONDS_OFF = "seconds; `false` switches it off"

SCHEMA: dict[str, Key] = {
    "node_id": Key("str", "this node's slug, unique across all sites (its MQTT client and topic "
                          "name)", default=REQUIRED, slug=True),
    "site": Key("str", "the slug of the site the node belongs to", default=REQUIRED, slug=True),
    "topic_root": Key("str", "MQTT topic root, the same as the server's FABPASS_TOPIC_ROOT",
                      default="fabpass"),
    "log_level": Key("choice", "logging level of the node daemon", default="INFO",
                     choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    "mqtt": Key("table", "the broker connection", keys={
        "url": Key("str", "`mqtt://host[:port]` or `mqtts://host[:port]` (TLS, default port 8883)",
                   default="mqtt://127.0.0.1:1883"),
        "username": Key("str", "MQTT user name (from `fabpass node provision`)"),
        "password": Key("str", "MQTT password; prefer `password_env` or the FABPASS_MQTT_PASSWORD "
                               "environment variable so the file holds no secret", secret=True),
        "password_env": Key("str", "name of an environment variable holding the password"),
        "tls_ca": Key("str", "CA certificate file (PEM) that signed the broker's certificate"),
        "tls_cert": Key("str", "client certificate file (PEM), for brokers that require one"),
        "tls_key": Key("str", "client private key file (PEM), with `tls_cert`"),
        "protocol": Key("choice", "MQTT protocol version", default="5", choices=("5", "3.1.1")),
        "keepalive_s": Key("int", "keep-alive interval in seconds", default=30, minimum=5,
                           maximum=3600),
    }),
    "reader": Key("table", "the badge reader", default=REQUIRED, keys={
        "type": Key("choice", "`mfrc522` (SPI RC522 board), `keyboard` (USB reader that types "
                              "the UID), `sim` (lines on stdin, for tests and the demo)",
                    default=REQUIRED, choices=("mfrc522", "keyboard", "sim")),
        "poll_hz": Key("number", "how often the reader is polled per second", default=20.0,
                       minimum=1, maximum=200),
        "miss_tolerance": Key("int", "polls a card may be missed before it counts as removed",
                              default=2, minimum=0, maximum=100),
        "spi_bus": Key("int", "mfrc522: SPI bus number", default=0, minimum=0, maximum=6),
        "spi_device": Key("int", "mfrc522: chip select (0 = CE0 on GPIO 8, 1 = CE1 on GPIO 7)",
                          default=0, minimum=0, maximum=2),
        "spi_speed_hz": Key("int", "mfrc522: SPI clock", default=1_000_000, minimum=10_000,
                            maximum=10_000_000),
        "reset_pin": Key("pin", "mfrc522: BCM pin wired to RST; `false` if not wired", default=25,
                         off=True),
        "device": Key("str", "keyboard: /dev/input/by-id/… path or a substring of the device "
                             "name (required for keyboard readers)"),
        "format": Key("choice", "keyboard: how the reader types the UID: `hex`, `hex_reversed` "
                                "(byte order reversed), `decimal`, `decimal_reversed`",
                      default="hex", choices=("hex", "hex_reversed", "decimal",
                                              "decimal_reversed")),
        "uid_bytes": Key("int", "keyboard, decimal formats: how many bytes the number encodes",
                         default=4, choices=(4, 7, 10)),
        "grab": Key("bool", "keyboard: take the device exclusively so the UID is not typed "
                            "into a console", default=True),
    }),
    "gpio": Key("table", "pins, BCM numbering; required unless a smart plug switches the "
                         "machine ([actuator])", keys={
        "relay": _output_pin("the relay that powers the machine; required unless `[actuator]` "
                             "names a smart plug (then it is ignored)", active_high_required=True),
        "green_led": _output_pin("green LED (or the green leg of an RGB LED); may be written "
                                 "as a bare pin number"),
        "red_led": _output_pin("red LED; may be written as a bare pin number"),
        "blue_led": _output_pin("blue LED; may be written as a bare pin number"),
        "buzzer": _output_pin("active buzzer; may be written as a bare pin number"),
        "activity": Key("table", "busy-signal input, e.g. a current sensor's output: the "
                                 "machine is busy while it is active", optional_table=True, keys={
            "pin": Key("pin", "BCM GPIO number (2-27)", default=REQUIRED),
            "active_high": Key("bool", "true: the input reads high while the machine is busy",
                               default=True),
            "pull_up": Key("bool", "true: internal pull-up, false: internal pull-down; absent: "
                                   "no internal pull (the external circuit decides)"),
            "bounce_s": Key("number", "debounce time in seconds", default=0.05, minimum=0,
                            maximum=5),
        }),
    }),
    "storage": Key("table", "where the node keeps its state", default=REQUIRED, keys={
        "dir": Key("str", "directory for the event outbox and the cached access list (must "
                          "survive reboots)", default=REQUIRED),
    }),
    "session": Key("table", "session policy defaults, used until (and where absent from) the "
                            "server's `policy`", keys={
        "mode": Key("choice", "`tap`: badge in and out; `present`: the card stays on the reader",
                    default="tap", choices=("tap", "present")),
        "max_session_s": Key("int", f"longest session, {SECONDS_OFF}", default=None, off=True,
                             minimum=0),
        "warn_before_s": Key("int", f"warning before the maximum is reached, {SECONDS_OFF}",
                             default=300, off=True, minimum=0),
        "grace_s": Key("int", f"present mode: how long the card may be away, {SECONDS_OFF}",
                       default=10, off=True, minimum=0),
        "idle_end_s": Key("int", f"end the session after the machine is idle this long, "
                                 f"{SECONDS_OFF}", default=None, off=True, minimum=0),
        "power_off": Key("choice", "`immediate`, or `when_idle` (keep the relay on until the "
                                   "machine is idle, e.g. a 3D printer)",
                         default="immediate", choices=("immediate", "when_idle")),
        "handover": Key("bool", "another authorised badge may take over a running session",
                        default=False),
        "end_on_revoke": Key("bool", "a revocation also ends the running session",
                             default=False),
        "on_stale": Key("choice", "without a valid access list: `deny` everyone, or "
                                  "`known_badges` (keep using the last list)",
                        default="deny", choices=("deny", "known_badges")),
        "heartbeat_s": Key("int", "seconds between session.heartbeat events", default=60,
                           minimum=5, maximum=3600),
    }),
    "actuator": Key("table", "what switches the machine: the `[gpio]` relay (default) or a "
                             "smart plug over MQTT; see docs/actuators.md", keys={
        "type": Key("choice", "`gpio` (the `[gpio]` relay), `shelly` (Shelly Gen2+ over MQTT "
                              "RPC), `tasmota` (Tasmota over MQTT)",
                    default="gpio", choices=("gpio", "shelly", "tasmota")),
        "device": Key("str", "plug: Shelly: its MQTT topic prefix (e.g. "
                             "`shellyplugsg3-a1b2c3d4e5f6`); Tasmota: its `%topic%`. Required "
                             "for a plug"),
        "channel": Key("int", "plug: Shelly switch id / Tasmota relay number minus one",
                       default=0, minimum=0, maximum=31),
        "lease_s": Key("int", "plug: it turns itself off this long after the node's last "
                              "renewal (Shelly `toggle_after`, Tasmota `PulseTime`)",
                       default=60, minimum=10, maximum=300),
        "mqtt_url": Key("str", "plug: its broker (`mqtt://` or `mqtts://`) when it is not the "
                               "node's; the node's credentials are used"),
        "confirm_s": Key("number", "plug: how long it has to confirm that it switched on before "
                                   "the badge is refused `actuator_failed`",
                         default=5.0, minimum=0.5, maximum=30),
        "machine_kind": Key("choice", "plug: the kind of machine, for the power thresholds' "
                                      "defaults", default="other",
                            choices=("laser_cutter", "3d_printer", "cnc", "other")),
        "power_activity": Key("bool", "plug: its measured power is the activity input (busy / "
                                      "idle) unless `[gpio] activity` is wired", default=True),
        "busy_above_w": Key("number", "plug: busy once the power stays above this (W); default "
                                      "per machine kind", minimum=0),
        "idle_below_w": Key("number", "plug: idle once the power stays below this (W); default "
                                      "per machine kind", minimum=0),
        "busy_after_s": Key("number", "plug: how long the power must stay above `busy_above_w`; "
                                      "default per machine kind", minimum=0, maximum=3600),
        "idle_after_s": Key("number", "plug: how long the power must stay below `idle_below_w`; "
                                      "default per machine kind", minimum=0, maximum=3600),
    }),
}
