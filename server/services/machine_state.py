"""The one derivation of a machine's live state, used by the dashboard, the pages and the API.

Order matters and denies first: a lock (by a manager or reported by the node) wins, then a node
that is not online, then a running session (an open session row, or a node in one of
`protocol.BUSY_STATES`), then a node waiting for its first list (`no_acl`); otherwise idle.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol import BUSY_STATES
from server.models import Machine, Member, Node, NodePlug, Site, UsageSession
from server.services import energy


def machine_state(*, locked: bool, online: bool, node_state: str | None, in_session: bool) -> str:
    """`locked`, `offline`, `in_use`, `no_acl` or `idle`."""
    if locked or node_state == "locked":
        return "locked"
    if not online:
        return "offline"
    if in_session or node_state in BUSY_STATES:
        return "in_use"
    if node_state == "no_acl":
        return "no_acl"
    return "idle"


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def live_machine_states(db: Session, due: dict[int, list[dict[str, Any]]] | None = None
                        ) -> list[dict[str, Any]]:
    """Every active machine's live state, from the node's status and open sessions, in three
    queries; `due` adds each machine's due maintenance (the caller words it)."""
    machines = db.execute(
        select(Machine.id, Machine.slug, Machine.name, Machine.locked, Machine.lock_reason,
               Site.slug.label("site"), Site.name.label("site_name"),
               Node.online, Node.state, NodePlug.power_w, NodePlug.online.label("plug_online"),
               NodePlug.unexpected_at)
        .select_from(Machine)
        .outerjoin(Node, Node.id == Machine.node_id)
        .outerjoin(NodePlug, NodePlug.node_id == Machine.node_id)
        .outerjoin(Site, Site.id == Machine.site_id)
        .where(Machine.active.is_(True))
        .order_by(Machine.site_id, Machine.name)
    ).all()
    open_rows = db.execute(
        select(UsageSession.machine_id, UsageSession.member_id, UsageSession.started_at,
               UsageSession.badge_uid)
        .where(UsageSession.ended_at.is_(None))
        .order_by(UsageSession.started_at)
    ).all()
    open_by_machine = {r.machine_id: r for r in open_rows}  # latest wins
    member_ids = {r.member_id for r in open_rows if r.member_id}
    names = (dict(db.execute(select(Member.id, Member.name).where(Member.id.in_(member_ids))).all())
             if member_ids else {})
    due = due or {}
    out = []
    for m in machines:
        online = bool(m.online)  # None: no node
        sess = open_by_machine.get(m.id)
        out.append({
            "id": m.id,
            "slug": m.slug,
            "name": m.name,
            "site": m.site,
            "site_name": m.site_name,  # what a person reads; `site` stays the slug
            "state": machine_state(locked=bool(m.locked), online=online, node_state=m.state,
                                   in_session=sess is not None),
            "node_state": m.state,
            "online": online,
            "locked": bool(m.locked),
            "lock_reason": m.lock_reason if m.locked else None,
            "member": (names.get(sess.member_id) if sess and sess.member_id else None),
            "member_id": sess.member_id if sess else None,
            "since": _iso(sess.started_at) if sess else None,
            "maintenance": due.get(m.id, []),
            # smart plug (issue 16): live power, offline, found on alone lately
            "power_w": m.power_w if online else None,
            "plug_online": m.plug_online if online else None,
            "plug_unexpected_at": (_iso(m.unexpected_at) if m.unexpected_at is not None
                                   and energy.unexpected_recent(m.unexpected_at) else None),
        })
    return out
