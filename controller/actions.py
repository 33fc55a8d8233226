"""What the node's state machine asks the daemon to do, in order.

Kept apart from the decision rules (controller/session.py) so that the daemon, the actuator
drivers and the tests name the same few action types without importing the state machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class RelayAction:
    on: bool


@dataclass(frozen=True)
class EmitAction:
    """An event to store in the outbox and publish.

    `checkpoint`: the open session's checkpoint to store in the same
    transaction; `clear_checkpoint`: the session ended, drop it atomically.
    """

    type: str
    data: dict[str, Any]
    ts: datetime
    checkpoint: dict[str, Any] | None = None
    clear_checkpoint: bool = False


@dataclass(frozen=True)
class SignalAction:
    """LED/buzzer feedback: granted, denied, warning, signoff, signed, identify, extended."""

    pattern: str


@dataclass(frozen=True)
class ResyncAction:
    """Republish the status and resend the whole outbox now."""


Action = RelayAction | EmitAction | SignalAction | ResyncAction
