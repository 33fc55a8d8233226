"""paid use: tariff versions, charges (one per closed session), top-ups

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 10:00:00

Written by hand. New tables only: nothing existing changes, and without a tariff nothing is
charged, so an upgrade changes no behaviour until a manager sets prices.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from server.models.base import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tariffs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("valid_from", UTCDateTime(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"],
                                name=op.f("fk_tariffs_machine_id_machines")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tariffs")),
        sa.UniqueConstraint("machine_id", "version", name="uq_tariffs_machine_version"),
    )
    op.create_index(op.f("ix_tariffs_machine_id"), "tariffs", ["machine_id"], unique=False)
    op.create_index("ix_tariffs_machine_valid_from", "tariffs", ["machine_id", "valid_from"],
                    unique=False)
    op.create_table(
        "charges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("machine_id", sa.Integer(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("tariff_id", sa.Integer(), nullable=True),
        sa.Column("tariff_version", sa.Integer(), nullable=True),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("minutes_billed", sa.Integer(), nullable=False),
        sa.Column("computed_cents", sa.Integer(), nullable=False),
        sa.Column("override", sa.String(length=10), nullable=True),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("free_reason", sa.String(length=20), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"],
                                name=op.f("fk_charges_machine_id_machines")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"],
                                name=op.f("fk_charges_member_id_members")),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"],
                                name=op.f("fk_charges_session_id_sessions")),
        sa.ForeignKeyConstraint(["tariff_id"], ["tariffs.id"],
                                name=op.f("fk_charges_tariff_id_tariffs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charges")),
        sa.UniqueConstraint("session_id", name=op.f("uq_charges_session_id")),
    )
    op.create_index(op.f("ix_charges_machine_id"), "charges", ["machine_id"], unique=False)
    op.create_index(op.f("ix_charges_member_id"), "charges", ["member_id"], unique=False)
    op.create_index(op.f("ix_charges_started_at"), "charges", ["started_at"], unique=False)
    op.create_table(
        "topups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("voided", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"],
                                name=op.f("fk_topups_member_id_members")),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_topups_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topups")),
    )
    op.create_index(op.f("ix_topups_at"), "topups", ["at"], unique=False)
    op.create_index(op.f("ix_topups_member_id"), "topups", ["member_id"], unique=False)
    op.create_index(op.f("ix_topups_site_id"), "topups", ["site_id"], unique=False)


def downgrade() -> None:
    op.drop_table("topups")
    op.drop_table("charges")
    op.drop_table("tariffs")
