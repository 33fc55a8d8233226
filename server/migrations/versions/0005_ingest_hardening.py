"""sessions: clock_untrusted, the flag of a session placed from the receive time

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 10:00:00

Issue 13 (contract section 6, plausibility): a session whose node's wall-clock times are not
trusted (before 2020-01-01, or more than a day after the server received them) is placed from the
receive time and its monotonic durations, and flagged so that the pages and exports can say so.
A plain ADD COLUMN (no batch copy): on SQLite a table copy would drop the roll-up triggers.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("clock_untrusted", sa.Boolean(), nullable=False,
                                        server_default=sa.false()))


def downgrade() -> None:
    # SQLite >= 3.35 and PostgreSQL both drop a column in place (the triggers stay)
    op.execute("ALTER TABLE sessions DROP COLUMN clock_untrusted")
