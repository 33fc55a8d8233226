"""bookings: machine bookings and their secret iCal feeds (issue 17)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 10:00:00

Bookings are cancelled, never deleted (no-shows and "booked vs used" reports need them);
`(source, external_id)` lets another system (Fab-manager) find its bookings again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from server.models.base import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bookings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("start", UTCDateTime(), nullable=False),
        sa.Column("end", UTCDateTime(), nullable=False),
        sa.Column("training", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("cancelled_at", UTCDateTime(), nullable=True),
        sa.Column("cancelled_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"],
                                name=op.f("fk_bookings_machine_id_machines")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"],
                                name=op.f("fk_bookings_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
        sa.UniqueConstraint("source", "external_id", name="uq_bookings_source_external"),
    )
    op.create_index("ix_bookings_machine_start", "bookings", ["machine_id", "start"])
    op.create_index(op.f("ix_bookings_member_id"), "bookings", ["member_id"])
    op.create_table(
        "booking_feeds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=True),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"],
                                name=op.f("fk_booking_feeds_machine_id_machines")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"],
                                name=op.f("fk_booking_feeds_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_feeds")),
    )
    op.create_index(op.f("ix_booking_feeds_machine_id"), "booking_feeds", ["machine_id"])
    op.create_index(op.f("ix_booking_feeds_member_id"), "booking_feeds", ["member_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_booking_feeds_member_id"), table_name="booking_feeds")
    op.drop_index(op.f("ix_booking_feeds_machine_id"), table_name="booking_feeds")
    op.drop_table("booking_feeds")
    op.drop_index(op.f("ix_bookings_member_id"), table_name="bookings")
    op.drop_index("ix_bookings_machine_start", table_name="bookings")
    op.drop_table("bookings")
