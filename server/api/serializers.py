"""JSON bodies of the API resources (contract section 3).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from server import services
from server.api.support import iso
from server.app import get_db
from server.services import machine_state

if TYPE_CHECKING:
    from server.models import Authorization, Badge, Machine, Member, Node, Site, UsageSession


def site_json(s: Site) -> dict[str, Any]:
    return {"id": s.id, "slug": s.slug, "name": s.name, "timezone": s.timezone}


def badge_json(b: Badge) -> dict[str, Any]:
    return {"uid": b.uid, "member_id": b.member_id, "status": b.status.value,
            "created_at": iso(b.created_at)}


def member_json(m: Member, contact: bool = True) -> dict[str, Any]:
    """A member; without `contact` (a manager of other sites, contract section 6) the e-mail
    is absent from the body."""
    body = {"id": m.id, "name": m.name, "email": m.email, "member_no": m.member_no,
            "site": m.site.slug if m.site else None, "tags": list(m.tags or []),
            "active": bool(m.active),
            "active_until": m.active_until.isoformat() if m.active_until else None,
            "badges": [badge_json(b) for b in m.badges], "created_at": iso(m.created_at)}
    if not contact:
        del body["email"]
    return body


def machine_json(m: Machine, open_map: dict[int, UsageSession] | None = None) -> dict[str, Any]:
    node = m.node
    online = bool(node and node.online)
    if open_map is None:
        open_map = services.open_sessions_by_machine(get_db(), [m.id])
    sess = open_map.get(m.id)
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
            "session_started": iso(sess.started_at) if sess else None,
            "last_seen": iso(node.last_seen) if node else None,
        },
    }


def authorization_json(a: Authorization) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"id": a.id, "member_id": a.member_id, "machine_id": a.machine_id,
            "group_id": a.group_id, "role": a.role.value, "granted_at": iso(a.granted_at),
            "granted_via": a.granted_via, "expires_at": iso(a.expires_at),
            "revoked_at": iso(a.revoked_at), "revoke_reason": a.revoke_reason,
            "valid": a.revoked_at is None and (a.expires_at is None or a.expires_at > now)}


def session_json(s: UsageSession) -> dict[str, Any]:
    return {"id": s.id, "session": s.session_uuid, "machine_id": s.machine_id,
            "machine": s.machine.slug if s.machine else None, "member_id": s.member_id,
            "uid": s.badge_uid, "started": iso(s.started_at), "ended": iso(s.ended_at),
            "duration_s": s.duration_s, "active_s": s.active_s, "reason": s.end_reason,
            "clock_untrusted": bool(s.clock_untrusted)}  # placed from the receive time


def node_json(n: Node) -> dict[str, Any]:
    return {"node": n.slug, "site": n.site.slug if n.site else None,
            "machine": n.machine.slug if n.machine else None, "online": bool(n.online),
            "state": n.state, "acl_version": n.acl_version,
            "acl_published_version": n.acl_published_version, "software": n.software,
            "last_seen": iso(n.last_seen)}
