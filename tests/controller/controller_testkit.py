"""Helpers shared by the controller tests: access lists and a machine wired to mock pins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from controller.clock import FakeClock
from controller.hardware import Hardware
from controller.session import (
    Action,
    EmitAction,
    NodeMachine,
    RelayAction,
    ResyncAction,
    SignalAction,
)
from firmware_config.node_config import ActivityConfig, GpioConfig, PinConfig, SessionConfig
from protocol import AccessList, format_ts

ALICE = "04A1B2C3"  # user
BOB = "04B0B0B0"  # user
TRAINER = "04C0FFEE"  # trainer
OLD = "04DEAD00"  # listed, expired `until`
NOAUTH = "04000001"  # listed with "authorized": false
STRANGER = "04FFFFFF"  # not listed

RELAY, GREEN, RED, BLUE, BUZZER, ACTIVITY = 17, 22, 23, 24, 25, 27


def acl_dict(*, version: int = 1, node: str = "laser-1", site: str = "lab",
             issued: datetime | None = None, valid_s: float = 7 * 86400, locked: bool = False,
             policy: dict[str, Any] | None = None, badges: list[dict[str, Any]] | None = None,
             ) -> dict[str, Any]:
    issued = issued or datetime(2026, 11, 22, 9, 0, 0, tzinfo=UTC)
    if badges is None:
        badges = [
            {"uid": ALICE, "member": 1, "label": "Alice", "role": "user", "until": None},
            {"uid": BOB, "member": 2, "role": "user", "until": None},
            {"uid": TRAINER, "member": 3, "role": "trainer", "until": None},
            {"uid": OLD, "member": 4, "role": "user",
             "until": format_ts(issued - timedelta(days=1))},
            {"uid": NOAUTH, "member": 5, "role": "user", "until": None, "authorized": False},
        ]
    return {"v": 1, "version": version, "site": site, "node": node, "machine": node,
            "issued": format_ts(issued), "valid_until": format_ts(issued + timedelta(seconds=valid_s)),
            "locked": locked, "policy": policy or {}, "badges": badges}


def make_acl(**kw: Any) -> tuple[AccessList, dict[str, Any]]:
    raw = acl_dict(**kw)
    return AccessList.decode(raw), raw


class Rig:
    """A NodeMachine driving real gpiozero devices on MockFactory pins, with a fake clock."""

    def __init__(self, factory: Any, *, policy: dict[str, Any] | None = None,
                 defaults: SessionConfig | None = None, acl: bool = True,
                 activity: bool = True, **acl_kw: Any) -> None:
        self.factory = factory
        gpio = GpioConfig(relay=PinConfig(RELAY), green_led=PinConfig(GREEN),
                          red_led=PinConfig(RED), blue_led=PinConfig(BLUE),
                          buzzer=PinConfig(BUZZER),
                          activity=ActivityConfig(ACTIVITY) if activity else None)
        self.clock = FakeClock()
        self.machine = NodeMachine("laser-1", "lab", defaults or SessionConfig(), self.clock,
                                   has_activity=activity)
        self.hw = Hardware(gpio, pin_factory=factory, on_activity=self._on_activity, simulate=True)
        self.events: list[EmitAction] = []
        self.signals: list[str] = []
        self.resyncs = 0
        if acl:
            a, raw = make_acl(policy=policy, **acl_kw)
            self.do(self.machine.load_acl(a, raw))

    def _on_activity(self, busy: bool) -> None:
        self.do(self.machine.activity(busy))

    def do(self, actions: list[Action]) -> list[Action]:
        for act in actions:
            if isinstance(act, RelayAction):
                self.hw.set_relay(act.on)
            elif isinstance(act, EmitAction):
                self.events.append(act)
            elif isinstance(act, SignalAction):
                self.signals.append(act.pattern)
                self.hw.signal(act.pattern)
            elif isinstance(act, ResyncAction):
                self.resyncs += 1
        return actions

    # inputs
    def place(self, uid: str) -> None:
        self.do(self.machine.badge_placed(uid))

    def remove(self, uid: str) -> None:
        self.do(self.machine.badge_removed(uid))

    def tap(self, uid: str) -> None:
        self.place(uid)
        self.advance(0.3)
        self.remove(uid)

    def busy(self, on: bool) -> None:
        assert self.hw.drive_activity(on)

    def advance(self, seconds: float, step: float = 0.5) -> None:
        """Move time forward, ticking the machine every `step` seconds like the daemon does."""
        left = seconds
        while left > 1e-9:
            d = min(step, left)
            self.clock.advance(d)
            left -= d
            self.do(self.machine.tick())

    # observations
    def relay_states(self) -> list[bool]:
        return [bool(s.state) for s in self.factory.pin(RELAY).states]

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def of(self, etype: str) -> list[dict[str, Any]]:
        return [e.data for e in self.events if e.type == etype]

    def last(self, etype: str) -> dict[str, Any]:
        found = self.of(etype)
        assert found, f"no {etype} in {self.types()}"
        return found[-1]

    @property
    def state(self) -> str:
        return self.machine.state
