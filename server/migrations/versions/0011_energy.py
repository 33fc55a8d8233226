"""smart plugs: each node's actuator, its plug's latest word, energy per session

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 13:30:00

`node_actuators` holds what provisioning set (type, device, channel, lease); `node_plugs` the
ingest's latest power / online / found-on-alone per node; `sessions.energy_wh` is the
`session.ended` field (nullable: relays measure nothing).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from server.models.base import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "node_actuators",
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=True),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("lease_s", sa.Integer(), nullable=False),
        sa.Column("mqtt_password_hash", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], ondelete="CASCADE",
                                name=op.f("fk_node_actuators_node_id_nodes")),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_node_actuators")),
    )
    op.create_table(
        "node_plugs",
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("power_w", sa.Float(), nullable=True),
        sa.Column("power_at", UTCDateTime(), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=True),
        sa.Column("online_at", UTCDateTime(), nullable=True),
        sa.Column("unexpected_at", UTCDateTime(), nullable=True),
        sa.Column("unexpected", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], ondelete="CASCADE",
                                name=op.f("fk_node_plugs_node_id_nodes")),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_node_plugs")),
    )
    # a plain ADD COLUMN: a batch copy of `sessions` would drop its roll-up triggers on SQLite
    op.add_column("sessions", sa.Column("energy_wh", sa.Float(), nullable=True))
    # roll-up cells carry energy too; energy existed nowhere before this revision, so 0 is
    # exact for every cell already written
    op.add_column("usage_rollup", sa.Column("energy_wh", sa.Float(), nullable=False,
                                            server_default="0"))


def downgrade() -> None:
    op.execute("ALTER TABLE usage_rollup DROP COLUMN energy_wh")
    op.execute("ALTER TABLE sessions DROP COLUMN energy_wh")
    op.drop_table("node_plugs")
    op.drop_table("node_actuators")
