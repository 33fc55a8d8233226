"""usage roll-ups: per machine and local day/month aggregates kept fresh by triggers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 23:50:00

Written by hand (autogenerate does not see triggers). Existing closed sessions are marked dirty
per machine, so the first refresh (the server's, or any report's) builds the cells.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_rollup",
        sa.Column("grain", sa.String(length=5), nullable=False),
        sa.Column("machine_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("tz", sa.String(length=64), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("active_seconds", sa.Float(), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("member_ids", sa.LargeBinary(), nullable=False),
        sa.Column("starter_ids", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("grain", "machine_id", "period", name=op.f("pk_usage_rollup")),
    )
    op.create_table(
        "usage_rollup_dirty",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("op", sa.String(length=3), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=True),
        sa.Column("machine_id", sa.Integer(), nullable=True),
        sa.Column("t_from", server.models.UTCDateTime(), nullable=False),
        sa.Column("t_to", server.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_rollup_dirty")),
    )
    op.create_table(
        "usage_rollup_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("max_wall_s", sa.Float(), nullable=False),
        sa.Column("refreshes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_rollup_state")),
    )
    bind = op.get_bind()
    for ddl in server.models.rollup_triggers(bind.dialect.name):
        op.execute(ddl)
    op.execute("INSERT INTO usage_rollup_state (id, max_wall_s, refreshes) VALUES (1, 0, 0)")
    op.execute(
        "INSERT INTO usage_rollup_dirty (op, machine_id, t_from, t_to) "
        "SELECT 'chg', machine_id, min(started_at), max(ended_at) FROM sessions "
        "WHERE ended_at IS NOT NULL GROUP BY machine_id"
    )


def downgrade() -> None:
    bind = op.get_bind()
    for ddl in server.models.ROLLUP_TRIGGER_DROPS.get(bind.dialect.name, ()):
        op.execute(ddl)
    op.drop_table("usage_rollup_state")
    op.drop_table("usage_rollup_dirty")
    op.drop_table("usage_rollup")
