"""Smart-plug readings the ingest keeps: live power, plug online, found on alone, energy (issue 16).

No Flask, no MQTT: the ingest calls these with the decoded message. Why a separate row per node
(`node_plugs`) rather than reading `nodes.last_status`: heartbeats carry power too, and the
"found on without a session" event must outlive the next status.

Energy plausibility (contract 6 "Plausibility", in the same spirit): a `session.ended`
`energy_wh` must be a finite number >= 0 (the protocol decoder checks that) and no more than
the session could draw at `MAX_POWER_W` (a 16 A plug on 230 V, with a margin) over its
`duration_s`, plus `ENERGY_SLACK_WH` for a counter read a few seconds late; anything above is
rejected with a reason, like an impossible duration.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from protocol import Event
from server.models import Node, NodePlug
from server.services.usage import EventRefused

MAX_POWER_W = 4000.0
ENERGY_SLACK_WH = 5.0
UNEXPECTED_WINDOW = timedelta(hours=1)  # "found on without a session" stays shown/alerted this long


def unexpected_recent(at: datetime, now: datetime | None = None) -> bool:
    """Whether a plug found on alone at `at` is still news (dashboard, alert)."""
    return (now or datetime.now(UTC)) - at < UNEXPECTED_WINDOW


def check_energy(msg: Event) -> None:
    """Raises EventRefused for an `energy_wh` no plug can have measured in that session."""
    if msg.type != "session.ended" or msg.data.get("energy_wh") is None:
        return
    value = msg.data["energy_wh"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EventRefused("implausible: energy_wh is not a finite number")
    if value < 0:
        raise EventRefused(f"implausible: energy_wh is negative ({value:g})")
    duration = msg.data.get("duration_s")
    hours = float(duration) / 3600.0 if isinstance(duration, int | float) else 0.0
    limit = MAX_POWER_W * hours + ENERGY_SLACK_WH
    if value > limit:
        raise EventRefused(f"implausible: energy_wh ({value:g} Wh) is over what {MAX_POWER_W:g} W "
                           f"can draw in duration_s ({limit:g} Wh)")


def _plug(db: Session, node: Node) -> NodePlug:
    row = db.get(NodePlug, node.id)
    if row is None:
        row = NodePlug(node_id=node.id)
        db.add(row)
    return row


def _power(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and 0 <= value <= 10 * MAX_POWER_W else None


def record_power(db: Session, node: Node, power: Any, at: datetime) -> None:
    """The latest power of the node's plug, from a heartbeat or a status (older readings lose)."""
    watts = _power(power)
    if watts is None:
        return
    row = _plug(db, node)
    if row.power_at is None or at >= row.power_at:
        row.power_w = watts
        row.power_at = at


def record_status(db: Session, node: Node, raw: dict[str, Any], at: datetime) -> None:
    """A status's plug fields: `power_w` and `actuator_online` (absent with a relay)."""
    online = raw.get("actuator_online")
    if "power_w" not in raw and not isinstance(online, bool):
        return
    record_power(db, node, raw.get("power_w"), at)
    if isinstance(online, bool):
        row = _plug(db, node)
        if row.online_at is None or at >= row.online_at:
            row.online = online
            row.online_at = at


def record_unexpected_on(db: Session, node: Node, data: dict[str, Any], at: datetime) -> None:
    """The plug was found on with no session; the alert rule reads `unexpected_at`."""
    row = _plug(db, node)
    if row.unexpected_at is None or at >= row.unexpected_at:
        row.unexpected_at = at
        row.unexpected = {k: data[k] for k in ("action", "device", "power_w") if k in data}
    record_power(db, node, data.get("power_w"), at)


def energy_of(msg: Event) -> float | None:
    value = msg.data.get("energy_wh")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
