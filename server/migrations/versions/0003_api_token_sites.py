"""API tokens bound to sites: a manager token reaches only its sites, like a manager login

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 10:00:00

Written by hand. Existing manager tokens get no site, so they reach only shared (site-less)
records from now on: re-create them with `fabpass token create --role manager --site SLUG`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_token_sites",
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_api_token_sites_site_id_sites"),
            ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["token_id"], ["api_tokens.id"], name=op.f("fk_api_token_sites_token_id_api_tokens"),
            ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token_id", "site_id", name=op.f("pk_api_token_sites")),
    )


def downgrade() -> None:
    op.drop_table("api_token_sites")
