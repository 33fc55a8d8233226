"""fabmanager: connector settings, linked users and sync runs

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 13:30:00

Issue 18: the Fab-manager connector. The coordinator re-chains down_revision when merging.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.models

revision: str = '0012'
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('fabmanager_config',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('token', sa.String(length=500), nullable=False),
    sa.Column('site', sa.String(length=64), nullable=True),
    sa.Column('trainings', sa.JSON(), nullable=False),
    sa.Column('machines', sa.JSON(), nullable=False),
    sa.Column('updated_at', server.models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fabmanager_config'))
    )
    op.create_table('fabmanager_links',
    sa.Column('fm_user_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('vanished_at', server.models.base.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_fabmanager_links_member_id_members')),
    sa.PrimaryKeyConstraint('fm_user_id', name=op.f('pk_fabmanager_links'))
    )
    op.create_index(op.f('ix_fabmanager_links_member_id'), 'fabmanager_links', ['member_id'], unique=False)
    op.create_table('fabmanager_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('started_at', server.models.base.UTCDateTime(), nullable=False),
    sa.Column('finished_at', server.models.base.UTCDateTime(), nullable=True),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('problems', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fabmanager_runs'))
    )


def downgrade() -> None:
    op.drop_table('fabmanager_runs')
    op.drop_index(op.f('ix_fabmanager_links_member_id'), table_name='fabmanager_links')
    op.drop_table('fabmanager_links')
    op.drop_table('fabmanager_config')
