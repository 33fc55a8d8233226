"""Smart plugs as the server knows them: each node's actuator, and what its plug last said.

The actuator (`node_actuators`) is set at provisioning and is the source of the node config's
`[actuator]` section and of the plug's broker identity; a node without a row drives the `[gpio]`
relay. The live side (`node_plugs`) is written by the ingest from statuses, heartbeats and
`actuator.unexpected_on` events, one row per node, so the dashboard reads it without scanning
events. Energy per session is `sessions.energy_wh` (server/models/usage.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.models.base import Base
from server.models.core import Node

ACTUATOR_TYPES = ("gpio", "shelly", "tasmota")


class NodeActuator(Base):
    """What switches a node's machine (contract 6, "Actuators (node config)")."""

    __tablename__ = "node_actuators"

    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"),
                                         primary_key=True)
    type: Mapped[str] = mapped_column(String(16))  # ACTUATOR_TYPES
    device: Mapped[str | None] = mapped_column(String(64))  # Shelly prefix / Tasmota %topic%
    channel: Mapped[int] = mapped_column(Integer, default=0)
    lease_s: Mapped[int] = mapped_column(Integer, default=60)
    # the plug's own broker user is `device`; only the hash of its password is kept
    mqtt_password_hash: Mapped[str | None] = mapped_column(String(255))

    node: Mapped[Node] = relationship()


class NodePlug(Base):
    """The latest word of a node's plug: power, online, and the last time it was found on alone."""

    __tablename__ = "node_plugs"

    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"),
                                         primary_key=True)
    power_w: Mapped[float | None] = mapped_column(Float)
    power_at: Mapped[datetime | None] = mapped_column()
    online: Mapped[bool | None] = mapped_column(Boolean)  # status `actuator_online`
    online_at: Mapped[datetime | None] = mapped_column()
    unexpected_at: Mapped[datetime | None] = mapped_column()  # last `actuator.unexpected_on`
    unexpected: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # its data

    node: Mapped[Node] = relationship()
