"""JSON bodies of the API resources (contract section 3).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from server.api.support import _iso
from server.app import get_db
from server.models import (
    Authorization,
    Badge,
    Machine,
    Member,
    Node,
    Site,
    UsageSession,
)
from server.services import machine_state


def site_json(s: Site) -> dict[str, Any]:
    return {"id": s.id, "slug": s.slug, "name": s.name, "timezone": s.timezone}


def badge_json(b: Badge) -> dict[str, Any]:
    return {"uid": b.uid, "member_id": b.member_id, "status": b.status.value,
            "created_at": _iso(b.created_at)}


def member_json(m: Member) -> dict[str, Any]:
    return {"id": m.id, "name": m.name, "email": m.email, "member_no": m.member_no,
            "site": m.site.slug if m.site else None, "tags": list(m.tags or []),
            "active": bool(m.active),
            "active_until": m.active_until.isoformat() if m.active_until else None,
            "badges": [badge_json(b) for b in m.badges], "created_at": _iso(m.created_at)}


def _open_session(db: Any, machine_id: int) -> UsageSession | None:
    return db.scalar(select(UsageSession).where(UsageSession.machine_id == machine_id,
                                                UsageSession.ended_at.is_(None))
                     .order_by(UsageSession.started_at.desc()).limit(1))


def _open_sessions(db: Any, machine_ids: list[int]) -> dict[int, UsageSession]:
    """The latest open session of each machine, in one query (lists of up to 500 machines)."""
    if not machine_ids:
        return {}
    rows = db.scalars(select(UsageSession).where(UsageSession.machine_id.in_(machine_ids),
                                                 UsageSession.ended_at.is_(None))
                      .order_by(UsageSession.started_at)).all()
    return {r.machine_id: r for r in rows}


def machine_json(m: Machine, open_map: dict[int, UsageSession] | None = None) -> dict[str, Any]:
    db = get_db()
    node = m.node
    online = bool(node and node.online)
    sess = open_map.get(m.id) if open_map is not None else _open_session(db, m.id)
    state = machine_state.machine_state(locked=bool(m.locked), online=online,
                                        node_state=node.state if node else None,
                                        in_session=sess is not None)
    return {
        "id": m.id, "slug": m.slug, "name": m.name, "site": m.site.slug, "kind": m.kind.value,
        "node": node.slug if node else None,
        "requires_authorization": bool(m.requires_authorization), "policy": m.policy or {},
        "locked": bool(m.locked), "lock_reason": m.lock_reason, "active": bool(m.active),
        "hourly_rate": m.hourly_rate,
        "status": {
            "state": state, "online": online, "node_state": node.state if node else None,
            "member": sess.member_id if sess else None,
            "session_started": _iso(sess.started_at) if sess else None,
            "last_seen": _iso(node.last_seen) if node else None,
        },
    }


def authorization_json(a: Authorization) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"id": a.id, "member_id": a.member_id, "machine_id": a.machine_id,
            "group_id": a.group_id, "role": a.role.value, "granted_at": _iso(a.granted_at),
            "granted_via": a.granted_via, "expires_at": _iso(a.expires_at),
            "revoked_at": _iso(a.revoked_at), "revoke_reason": a.revoke_reason,
            "valid": a.revoked_at is None and (a.expires_at is None or a.expires_at > now)}


def session_json(s: UsageSession) -> dict[str, Any]:
    return {"id": s.id, "session": s.session_uuid, "machine_id": s.machine_id,
            "machine": s.machine.slug if s.machine else None, "member_id": s.member_id,
            "uid": s.badge_uid, "started": _iso(s.started_at), "ended": _iso(s.ended_at),
            "duration_s": s.duration_s, "active_s": s.active_s, "reason": s.end_reason,
            "clock_untrusted": bool(s.clock_untrusted)}  # placed from the receive time


def node_json(n: Node) -> dict[str, Any]:
    return {"node": n.slug, "site": n.site.slug if n.site else None,
            "machine": n.machine.slug if n.machine else None, "online": bool(n.online),
            "state": n.state, "acl_version": n.acl_version,
            "acl_published_version": n.acl_published_version, "software": n.software,
            "last_seen": _iso(n.last_seen)}
