"""web_logins: server-side login sessions, so a cookie copied before logout stops working

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 10:00:00

Written by hand. Existing cookies carry no login id: everyone logs in again once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_logins",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_web_logins_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_logins")),
    )
    with op.batch_alter_table("web_logins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_logins_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("web_logins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_logins_user_id"))
    op.drop_table("web_logins")
