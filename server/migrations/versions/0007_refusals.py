"""refusals explained, and enrolments waiting for the next unknown badge

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-03 10:00:00

`refusals` holds one row per `badge.denied` event with the server's explanation beside the
node's reason. Refusals stored before this revision are copied from `events` with the node's
reason as the explanation (what the server would have said then is no longer knowable).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from server.models.base import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000


def upgrade() -> None:
    op.create_table(
        "refusals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_uuid", sa.String(length=36), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=True),
        sa.Column("machine_id", sa.Integer(), nullable=True),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("uid", sa.String(length=20), nullable=False),
        sa.Column("node_reason", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"],
                                name=op.f("fk_refusals_machine_id_machines")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"],
                                name=op.f("fk_refusals_member_id_members")),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name=op.f("fk_refusals_node_id_nodes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refusals")),
        sa.UniqueConstraint("event_uuid", name=op.f("uq_refusals_event_uuid")),
    )
    op.create_index(op.f("ix_refusals_at"), "refusals", ["at"], unique=False)
    op.create_index("ix_refusals_member_at", "refusals", ["member_id", "at"], unique=False)
    op.create_index("ix_refusals_machine_at", "refusals", ["machine_id", "at"], unique=False)
    op.create_table(
        "pending_enrolments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("site_ids", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.Column("badge_uid", sa.String(length=20), nullable=True),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"],
                                name=op.f("fk_pending_enrolments_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_enrolments")),
    )
    op.create_index(op.f("ix_pending_enrolments_member_id"), "pending_enrolments", ["member_id"],
                    unique=False)
    op.create_index(op.f("ix_pending_enrolments_expires_at"), "pending_enrolments",
                    ["expires_at"], unique=False)
    _copy_old_refusals()


def _copy_old_refusals() -> None:
    """Existing `badge.denied` events become refusals explained by the node's own reason."""
    conn = op.get_bind()
    meta = sa.MetaData()
    events = sa.Table("events", meta, sa.Column("id", sa.Integer), sa.Column("event_id", sa.String),
                      sa.Column("node_id", sa.Integer), sa.Column("type", sa.String),
                      sa.Column("ts", UTCDateTime()), sa.Column("received_at", UTCDateTime()),
                      sa.Column("data", sa.JSON))
    machines = sa.Table("machines", meta, sa.Column("id", sa.Integer),
                        sa.Column("node_id", sa.Integer))
    badges = sa.Table("badges", meta, sa.Column("uid", sa.String),
                      sa.Column("member_id", sa.Integer))
    refusals = sa.Table("refusals", meta, sa.Column("event_uuid", sa.String),
                        sa.Column("at", UTCDateTime()), sa.Column("received_at", UTCDateTime()),
                        sa.Column("node_id", sa.Integer), sa.Column("machine_id", sa.Integer),
                        sa.Column("member_id", sa.Integer), sa.Column("uid", sa.String),
                        sa.Column("node_reason", sa.String), sa.Column("reason", sa.String),
                        sa.Column("detail", sa.JSON))
    machine_of = dict(conn.execute(sa.select(machines.c.node_id, machines.c.id)
                                   .where(machines.c.node_id.is_not(None))).all())
    last = 0
    while True:
        rows = conn.execute(sa.select(events).where(events.c.type == "badge.denied",
                                                    events.c.id > last)
                            .order_by(events.c.id).limit(BATCH)).all()
        if not rows:
            return
        last = rows[-1].id
        uids = {str((r.data or {}).get("uid") or "")[:20] for r in rows}
        member_of = dict(conn.execute(sa.select(badges.c.uid, badges.c.member_id)
                                      .where(badges.c.uid.in_(sorted(uids)))).all())
        out = []
        for r in rows:
            data = r.data if isinstance(r.data, dict) else {}
            uid = str(data.get("uid") or "")[:20]
            reason = str(data.get("reason") or "")[:40]
            out.append({"event_uuid": r.event_id, "at": r.ts, "received_at": r.received_at,
                        "node_id": r.node_id, "machine_id": machine_of.get(r.node_id),
                        "member_id": member_of.get(uid), "uid": uid, "node_reason": reason,
                        "reason": reason, "detail": None})
        conn.execute(sa.insert(refusals), out)


def downgrade() -> None:
    op.drop_index(op.f("ix_pending_enrolments_expires_at"), table_name="pending_enrolments")
    op.drop_index(op.f("ix_pending_enrolments_member_id"), table_name="pending_enrolments")
    op.drop_table("pending_enrolments")
    op.drop_index("ix_refusals_machine_at", table_name="refusals")
    op.drop_index("ix_refusals_member_at", table_name="refusals")
    op.drop_index(op.f("ix_refusals_at"), table_name="refusals")
    op.drop_table("refusals")
