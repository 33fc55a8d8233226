"""The node configuration as typed objects (contract section 4).

This module holds the shape and the defaults; `firmware_config.validate`
owns checking a TOML file against it with file/line/key messages. The
controller only ever sees a `NodeConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


class ConfigError(Exception):
    """Root of the firmware_config package's errors; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class MqttConfig:
    url: str = "mqtt://127.0.0.1:1883"  # mqtts:// for TLS
    username: str | None = None
    # never in repr/logs; the file may name an environment variable instead (password_env)
    password: str | None = field(default=None, repr=False)
    password_env: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive_s: int = 30


@dataclass
class ReaderConfig:
    type: Literal["mfrc522", "keyboard", "sim"] = "sim"
    poll_hz: float = 20.0
    miss_tolerance: int = 2
    # mfrc522
    spi_bus: int = 0
    spi_device: int = 0
    spi_speed_hz: int = 1_000_000
    reset_pin: int | None = 25  # BCM numbering; None = reset line not wired
    # keyboard
    device: str | None = None  # /dev/input/by-id/... path or device name substring
    format: Literal["hex", "hex_reversed", "decimal", "decimal_reversed"] = "hex"
    uid_bytes: int = 4  # decimal formats: how many bytes the number encodes
    grab: bool = True


@dataclass
class PinConfig:
    pin: int
    active_high: bool = True


@dataclass
class ActivityConfig:
    pin: int
    active_high: bool = True  # True: the input reads high while the machine is busy
    pull_up: bool | None = None  # None: no internal pull (external circuit decides)
    bounce_s: float = 0.05


@dataclass
class GpioConfig:
    relay: PinConfig | None = None  # None: a smart plug switches the machine ([actuator])
    green_led: PinConfig | None = None
    red_led: PinConfig | None = None
    blue_led: PinConfig | None = None
    buzzer: PinConfig | None = None
    activity: ActivityConfig | None = None


@dataclass
class StorageConfig:
    dir: str


@dataclass
class SessionConfig:
    """Session policy defaults, used until (and where absent from) the server's `policy`."""

    mode: Literal["tap", "present"] = "tap"
    max_session_s: int | None = None
    warn_before_s: int | None = 300
    grace_s: int | None = 10
    idle_end_s: int | None = None
    power_off: Literal["immediate", "when_idle"] = "immediate"
    handover: bool = False
    end_on_revoke: bool = False
    on_stale: Literal["deny", "known_badges"] = "deny"
    heartbeat_s: int = 60


@dataclass
class ActuatorConfig:
    """What switches the machine: the `[gpio]` relay, or a smart plug over MQTT.

    The power thresholds are None in the file's absence; `controller.actuators.power`
    fills them from `machine_kind` (see docs/actuators.md).
    """

    type: Literal["gpio", "shelly", "tasmota"] = "gpio"
    device: str | None = None  # Shelly: its MQTT topic prefix; Tasmota: its %topic%
    channel: int = 0
    lease_s: int = 60
    mqtt_url: str | None = None  # the plug's broker when it is not the node's
    confirm_s: float = 5.0
    machine_kind: Literal["laser_cutter", "3d_printer", "cnc", "other"] = "other"
    power_activity: bool = True
    busy_above_w: float | None = None
    idle_below_w: float | None = None
    busy_after_s: float | None = None
    idle_after_s: float | None = None

    @property
    def is_plug(self) -> bool:
        return self.type != "gpio"


@dataclass
class NodeConfig:
    node_id: str
    site: str
    mqtt: MqttConfig
    reader: ReaderConfig
    gpio: GpioConfig
    storage: StorageConfig
    session: SessionConfig = field(default_factory=SessionConfig)
    actuator: ActuatorConfig = field(default_factory=ActuatorConfig)
    topic_root: str = "fabpass"
    log_level: str = "INFO"
    source: str | None = None  # the file it was read from, for messages
