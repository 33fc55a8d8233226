"""What switches the machine: the GPIO relay or a smart plug (docs/actuators.md).

`make_actuator` picks the backend from `[actuator] type`; `apply_reports` turns
what an actuator reports into state-machine inputs, so the daemon only wires.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controller.actuators.base import (
    Actuator,
    Availability,
    Busy,
    Confirmed,
    Failed,
    Meter,
    Report,
    UnexpectedOn,
)
from controller.clock import Clock
from controller.hardware import Hardware
from controller.session import Action, NodeMachine
from firmware_config.node_config import NodeConfig
from protocol import Topics
from protocol.topics import check_slug

__all__ = ["Actuator", "Report", "apply_reports", "make_actuator", "plug_src"]


def plug_src(cfg: NodeConfig) -> str:
    """The Shelly RPC `src` of this node: `{root}/v1/{site}/{node}/plug` (contract §6)."""
    root = Topics(cfg.topic_root).root
    return f"{root}/v1/{check_slug(cfg.site, 'site')}/{check_slug(cfg.node_id, 'node')}/plug"


def make_actuator(cfg: NodeConfig, hardware: Hardware, clock: Clock,
                  enqueue: Callable[[tuple[str, Any]], None]) -> Actuator:
    act = cfg.actuator
    if not act.is_plug:
        from controller.actuators.gpio import GpioActuator

        return GpioActuator(hardware)
    from controller.actuators.mqtt_plug import PlugActuator

    assert act.device is not None  # the loader requires it for a plug
    codec: Any
    if act.type == "shelly":
        from controller.actuators.shelly import ShellyCodec

        codec = ShellyCodec(act.device, act.channel, plug_src(cfg))
    else:
        from controller.actuators.tasmota import TasmotaCodec

        codec = TasmotaCodec(act.device, act.channel)
    return PlugActuator(cfg, codec, clock, enqueue, indicate=hardware.indicate)


def apply_reports(machine: NodeMachine, reports: list[Report], device: str | None = None,
                  ) -> list[Action]:
    """Each report as the state-machine input it stands for, actions in order."""
    acts: list[Action] = []
    for rep in reports:
        if isinstance(rep, Confirmed):
            acts += machine.actuator_confirmed()
        elif isinstance(rep, Failed):
            acts += machine.actuator_failed(rep.reason)
        elif isinstance(rep, Availability):
            acts += machine.actuator_available(rep.online)
        elif isinstance(rep, UnexpectedOn):
            acts += machine.actuator_unexpected_on(rep.action, device, rep.power_w)
        elif isinstance(rep, Meter):
            machine.actuator_meter(rep.power_w, rep.energy_wh)
        elif isinstance(rep, Busy):
            acts += machine.activity(rep.busy)
    return acts
