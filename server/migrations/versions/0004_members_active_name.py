"""members: an index on (active, name) for the members page

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 01:00:00

The members page lists active members by name, 50 at a time, with every request: without the
index both SQLite and PostgreSQL sort every active member each time.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.create_index("ix_members_active_name", ["active", "name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_index("ix_members_active_name")
