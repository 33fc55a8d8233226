"""The API v1 routes: thin over server.services, with strict input checks (never a 500)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response, g, jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from server import auth, services
from server.api import ApiError, bp
from server.api.openapi import document
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

MAX_ID = 2**31 - 1  # PostgreSQL integer
MAX_PAGE = 1_000_000
BUSY_STATES = ("in_use", "finishing", "grace", "signoff")


# ---------------------------------------------------------------- auth and input helpers


@bp.before_request
def _authenticate() -> Response | None:
    if request.endpoint == "api.openapi":
        return None
    p = auth.principal_from_bearer(get_db())
    if p is None:
        raise ApiError(401, "a valid API token is required (Authorization: Bearer <token>)")
    g.api_principal = p
    return None


def _actor() -> str:
    return auth.me().actor


def _require_admin() -> None:
    if auth.me().role != auth.ADMIN:
        raise ApiError(403, "this needs an admin token")


# A manager token reaches what a manager login of the same sites manages (server.auth): lists are
# filtered (`_scope`), one object of another site answers 403, and so does creating on one.


def _scope() -> frozenset[int] | None:
    """The token's sites for filtering lists (None: an admin token, every site)."""
    return auth.managed_site_ids(auth.me())


def _forbidden(what: str) -> ApiError:
    return ApiError(403, f"{what} is outside this token's sites")


def _managed_member(db: Any, member_id: int) -> Member:
    m = services.get_member(db, member_id)
    if not auth.can_manage_member(auth.me(), m):
        raise _forbidden(f"member {m.id}")
    return m


def _managed_machine(db: Any, machine_id: int) -> Machine:
    m = services.get_machine(db, machine_id)
    if not auth.can_manage_machine(auth.me(), m):
        raise _forbidden(f"machine {m.id}")
    return m


def _managed_authorization(db: Any, authorization_id: int) -> Authorization:
    a = services.get_authorization(db, authorization_id)
    p = auth.me()
    if not (auth.can_manage_member(p, a.member) and auth.can_change_authorization(db, p, a)):
        raise _forbidden(f"authorization {a.id}")
    return a


def _check_site(db: Any, slug: str | None) -> None:
    """Creating (or moving) a member or machine on this site needs a token of that site; no site
    (a shared member) is open to every manager. An admin token is not checked here."""
    if not slug or auth.me().is_admin:
        return
    site = services.get_site_by_slug(db, slug, "site")
    if not auth.can_manage_site(auth.me(), site.id):
        raise _forbidden(f"site {slug!r}")


def _report_site(slug: str | None, scope: frozenset[int]) -> int:
    """The site a manager token's report covers: `site` if it is one of the token's sites (403
    otherwise); without `site`, the token's only site (400 if it has several)."""
    db = get_db()
    if slug is not None:
        sid = db.scalar(select(Site.id).where(Site.slug == slug))
        if sid is None or sid not in scope:
            raise ApiError(403, f"site {slug!r} is not one of this token's sites",
                           {"site": "one of this token's sites"})
        return int(sid)
    if len(scope) == 1:
        return next(iter(scope))
    if not scope:
        raise ApiError(403, "this manager token has no site: create a new one with --site")
    slugs = db.scalars(select(Site.slug).where(Site.id.in_(sorted(scope))).order_by(Site.slug))
    raise ApiError(400, "this token reaches several sites: choose one with site",
                   {"site": "one of " + ", ".join(slugs)})


def _no_nul(value: Any, path: str = "body") -> None:
    """Reject NUL characters (PostgreSQL text cannot store them) anywhere in the input."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ApiError(400, f"{path}: NUL character not allowed", {path: "NUL not allowed"})
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_nul(k, path)
            _no_nul(v, f"{k}" if path == "body" else f"{path}.{k}")
    elif isinstance(value, list):
        for v in value:
            _no_nul(v, path)


def _body(allowed: tuple[str, ...]) -> dict[str, Any]:
    data = request.get_json(silent=True, force=True)
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    _no_nul(data)
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ApiError(400, "unknown fields", {k: "unknown field" for k in unknown})
    return data


def _check_id(value: Any, field: str, *, required: bool = True, status: int = 400) -> int | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value > MAX_ID:
        if status == 404:
            raise ApiError(404, f"{field} not found")
        raise ApiError(400, f"{field} must be a positive integer id", {field: "a positive integer"})
    return value


def _path_id(value: int, what: str) -> int:
    return int(_check_id(value, what, status=404) or 0)


def _query_int(name: str, default: int | None = None, lo: int = 1, hi: int = MAX_ID) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer", {name: "an integer"}) from None
    if value < lo or value > hi:
        raise ApiError(400, f"{name} must be between {lo} and {hi}", {name: f"{lo}..{hi}"})
    return value


def _query_time(name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    _no_nul(raw, name)
    try:
        text = raw.strip().replace("z", "Z")
        if "T" not in text.upper() or len(text) < 19:
            raise ValueError
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            raise ValueError
        dt = dt.astimezone(UTC)
        if not 1970 <= dt.year <= 2200:
            raise ValueError
        return dt
    except (ValueError, OverflowError):
        raise ApiError(400, f"{name} must be an RFC 3339 time", {name: "e.g. 2026-11-22T19:20:50Z"}) from None


def _page_args() -> tuple[int, int]:
    page = _query_int("page", 1, 1, MAX_PAGE) or 1
    per_page = _query_int("per_page", services.DEFAULT_PER_PAGE, 1, services.MAX_PER_PAGE)
    return page, per_page or services.DEFAULT_PER_PAGE


def _listing(page: services.Page[Any], ser: Any) -> Response:
    return jsonify({"items": [ser(x) for x in page.items], "total": page.total,
                    "page": page.page, "per_page": page.per_page})


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _created(obj: dict[str, Any]) -> tuple[Response, int]:
    return jsonify(obj), 201


# ---------------------------------------------------------------- serializers


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
    if m.locked or (node and node.state == "locked"):
        state = "locked"
    elif not online:
        state = "offline"
    elif sess is not None or (node and node.state in BUSY_STATES):
        state = "in_use"
    else:
        state = node.state if node and node.state else "idle"
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
            "duration_s": s.duration_s, "active_s": s.active_s, "reason": s.end_reason}


def node_json(n: Node) -> dict[str, Any]:
    return {"node": n.slug, "site": n.site.slug if n.site else None,
            "machine": n.machine.slug if n.machine else None, "online": bool(n.online),
            "state": n.state, "acl_version": n.acl_version,
            "acl_published_version": n.acl_published_version, "software": n.software,
            "last_seen": _iso(n.last_seen)}


# ---------------------------------------------------------------- routes


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(document())


@bp.post("/sites")
def create_site() -> Any:
    _require_admin()
    b = _body(("slug", "name", "timezone"))
    site = services.create_site(get_db(), b.get("slug"), b.get("name"),  # type: ignore[arg-type]
                                b.get("timezone"), actor=_actor())
    get_db().commit()
    return _created(site_json(site))


@bp.get("/sites")
def list_sites() -> Any:
    sites = services.list_sites(get_db())
    return jsonify({"items": [site_json(s) for s in sites], "total": len(sites), "page": 1,
                    "per_page": max(len(sites), 1)})


@bp.post("/members")
def create_member() -> Any:
    b = _body(("name", "email", "member_no", "site", "tags", "active_until"))
    db = get_db()
    site = _site_arg(b.get("site"))
    _check_site(db, site)
    m = services.create_member(db, b.get("name"), email=b.get("email"),  # type: ignore[arg-type]
                               member_no=b.get("member_no"), site=site,
                               tags=b.get("tags"), active_until=b.get("active_until"),
                               actor=_actor())
    db.commit()
    return _created(member_json(m))


def _site_arg(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, "site must be a slug", {"site": "a site slug"})
    return value


@bp.get("/members")
def list_members() -> Any:
    page, per_page = _page_args()
    active_raw = request.args.get("active")
    active = None if active_raw in (None, "") else active_raw.lower() in ("1", "true", "yes")
    q = request.args.get("q") or None
    site = request.args.get("site") or None
    _no_nul(q, "q")
    _no_nul(site, "site")
    db = get_db()
    pg = services.list_members(db, q=q, active=active, site=site, page=page, per_page=per_page,
                               site_ids=_scope())
    ids = [m.id for m in pg.items]
    if ids:  # badges and sites in one query each, not one per member
        db.scalars(select(Member).where(Member.id.in_(ids))
                   .options(selectinload(Member.badges), selectinload(Member.site))).all()
    return _listing(pg, member_json)


@bp.get("/members/<id:member_id>")
def get_member(member_id: int) -> Any:
    return jsonify(member_json(_managed_member(get_db(), _path_id(member_id, "member"))))


@bp.patch("/members/<id:member_id>")
def patch_member(member_id: int) -> Any:
    mid = _path_id(member_id, "member")
    b = _body(("name", "email", "member_no", "site", "tags", "active_until", "active"))
    db = get_db()
    _managed_member(db, mid)
    if "site" in b:
        b["site"] = _site_arg(b["site"])
        _check_site(db, b["site"])
    m = services.update_member(db, mid, actor=_actor(), **b)
    db.commit()
    return jsonify(member_json(m))


@bp.delete("/members/<id:member_id>")
def delete_member(member_id: int) -> Any:
    db = get_db()
    mid = _path_id(member_id, "member")
    _managed_member(db, mid)
    services.deactivate_member(db, mid, actor=_actor())
    db.commit()
    return "", 204


@bp.post("/members/<id:member_id>/badges")
def add_badge(member_id: int) -> Any:
    mid = _path_id(member_id, "member")
    b = _body(("uid",))
    if not isinstance(b.get("uid"), str):
        raise ApiError(400, "uid is required", {"uid": "8, 14 or 20 hex digits"})
    db = get_db()
    _managed_member(db, mid)
    badge = services.enrol_badge(db, mid, b["uid"], actor=_actor())
    db.commit()
    return _created(badge_json(badge) | {"id": badge.id})


@bp.patch("/badges/<uid>")
def patch_badge(uid: str) -> Any:
    _no_nul(uid, "uid")
    b = _body(("status",))
    if not isinstance(b.get("status"), str):
        raise ApiError(400, "status is required", {"status": "active, lost or inactive"})
    db = get_db()
    if not auth.can_manage_member(auth.me(), services.get_badge(db, uid).member):
        raise _forbidden(f"badge {uid}")
    badge = services.set_badge_status(db, uid, b["status"], actor=_actor())
    db.commit()
    return jsonify(badge_json(badge) | {"id": badge.id})


@bp.post("/machines")
def create_machine() -> Any:
    b = _body(("slug", "name", "site", "kind", "node", "requires_authorization", "policy"))
    for key in ("slug", "name", "site"):
        if not isinstance(b.get(key), str):
            raise ApiError(400, f"{key} is required", {key: "required text"})
    for key in ("kind", "node"):
        if key in b and b[key] is not None and not isinstance(b[key], str):
            raise ApiError(400, f"{key} must be text", {key: "text"})
    db = get_db()
    _check_site(db, b["site"])
    m = services.create_machine(db, b["slug"], b["name"], b["site"], kind=b.get("kind") or "other",
                                node=b.get("node"),
                                requires_authorization=b.get("requires_authorization", True),
                                policy=b.get("policy"), actor=_actor())
    db.commit()
    return _created(machine_json(m))


@bp.get("/machines")
def list_machines() -> Any:
    page, per_page = _page_args()
    site = request.args.get("site") or None
    _no_nul(site, "site")
    db = get_db()
    pg = services.list_machines(db, site=site, page=page, per_page=per_page, site_ids=_scope())
    ids = [m.id for m in pg.items]
    if ids:  # nodes and sites in one query each
        db.scalars(select(Machine).where(Machine.id.in_(ids))
                   .options(selectinload(Machine.node), selectinload(Machine.site))).all()
    open_map = _open_sessions(db, ids)
    return _listing(pg, lambda m: machine_json(m, open_map))


@bp.get("/machines/<id:machine_id>")
def get_machine(machine_id: int) -> Any:
    return jsonify(machine_json(_managed_machine(get_db(), _path_id(machine_id, "machine"))))


@bp.patch("/machines/<id:machine_id>")
def patch_machine(machine_id: int) -> Any:
    mid = _path_id(machine_id, "machine")
    b = _body(("name", "kind", "node", "requires_authorization", "policy", "hourly_rate", "active",
               "locked", "lock_reason"))
    db = get_db()
    _managed_machine(db, mid)
    if "node" in b and b["node"] is not None and not isinstance(b["node"], str):
        raise ApiError(400, "node must be a slug or null", {"node": "a node slug or null"})
    if "kind" in b and not isinstance(b["kind"], str):
        raise ApiError(400, "kind must be text", {"kind": "text"})
    locked = b.pop("locked", None)
    reason = b.pop("lock_reason", None)
    if locked is not None and not isinstance(locked, bool):
        raise ApiError(400, "locked must be a boolean", {"locked": "true or false"})
    if reason is not None and not isinstance(reason, str):
        raise ApiError(400, "lock_reason must be text", {"lock_reason": "text"})
    m = services.update_machine(db, mid, actor=_actor(), **b)
    if locked is not None:
        m = services.set_machine_lock(db, mid, locked, reason, actor=_actor())
    db.commit()
    return jsonify(machine_json(m))


@bp.post("/authorizations")
def create_authorization() -> Any:
    b = _body(("member_id", "machine_id", "group_id", "role", "expires_at"))
    member_id = _check_id(b.get("member_id"), "member_id")
    machine_id = _check_id(b.get("machine_id"), "machine_id", required=False)
    group_id = _check_id(b.get("group_id"), "group_id", required=False)
    role = b.get("role", "user")
    if not isinstance(role, str):
        raise ApiError(400, "role must be user or trainer", {"role": "user or trainer"})
    expires = b.get("expires_at")
    if expires is not None and not isinstance(expires, str):
        raise ApiError(400, "expires_at must be an RFC 3339 time", {"expires_at": "RFC 3339"})
    db = get_db()
    p = auth.me()
    if not p.is_admin:  # the member, and the machine or every machine of the group
        if not auth.can_manage_member(p, services.get_member(db, int(member_id or 0))):
            raise _forbidden(f"member {member_id}")
        if machine_id is not None and group_id is None and not auth.can_grant_machine(
                db, p, services.get_machine(db, machine_id)):
            raise _forbidden(f"machine {machine_id}")
        if group_id is not None and machine_id is None and not auth.can_grant_group(
                db, p, list(services.get_group(db, group_id).machines)):
            raise _forbidden(f"group {group_id}")
    a = services.grant(db, int(member_id or 0), machine_id=machine_id, group_id=group_id,
                       role=role, expires_at=expires, via="api", actor=p.actor)
    db.commit()
    return _created(authorization_json(a))


@bp.get("/authorizations")
def list_authorizations() -> Any:
    page, per_page = _page_args()
    member_id = _query_int("member_id")
    machine_id = _query_int("machine_id")
    valid = (request.args.get("valid") or "").lower() in ("1", "true", "yes")
    pg = services.list_authorizations(get_db(), member_id=member_id, machine_id=machine_id,
                                      valid_only=valid, page=page, per_page=per_page,
                                      site_ids=_scope())
    return _listing(pg, authorization_json)


@bp.get("/authorizations/<id:authorization_id>")
def get_authorization(authorization_id: int) -> Any:
    a = _managed_authorization(get_db(), _path_id(authorization_id, "authorization"))
    return jsonify(authorization_json(a))


@bp.delete("/authorizations/<id:authorization_id>")
def delete_authorization(authorization_id: int) -> Any:
    aid = _path_id(authorization_id, "authorization")
    reason = request.args.get("reason") or None
    _no_nul(reason, "reason")
    db = get_db()
    _managed_authorization(db, aid)
    services.revoke(db, aid, reason=reason[:500] if reason else None, actor=_actor())
    db.commit()
    return "", 204


@bp.get("/sessions")
def list_sessions() -> Any:
    page, per_page = _page_args()
    since, until = _query_time("since"), _query_time("until")
    pg = services.list_sessions(get_db(), machine_id=_query_int("machine_id"),
                                member_id=_query_int("member_id"), since=since, until=until,
                                page=page, per_page=per_page, site_ids=_scope())
    db = get_db()
    ids = [s.id for s in pg.items]
    if ids:  # load machines in one query for the slugs
        db.scalars(select(UsageSession).where(UsageSession.id.in_(ids))
                   .options(selectinload(UsageSession.machine))).all()
    return _listing(pg, session_json)


@bp.get("/nodes")
def list_nodes() -> Any:
    page, per_page = _page_args()
    db = get_db()
    pg = services.list_nodes(db, page=page, per_page=per_page, site_ids=_scope())
    ids = [n.id for n in pg.items]
    if ids:
        db.scalars(select(Node).where(Node.id.in_(ids))
                   .options(selectinload(Node.machine), selectinload(Node.site))).all()
    return _listing(pg, node_json)


@bp.get("/reports/usage")
def usage_report() -> Any:
    try:
        from server import reports
    except ImportError:  # the reports part is optional at import time
        raise ApiError(501, "reports are not available") from None
    group_by = request.args.get("group_by") or ""
    fmt = (request.args.get("format") or "json").lower()
    if fmt not in ("json", "csv"):
        raise ApiError(400, "format must be json or csv", {"format": "json or csv"})
    _no_nul(group_by, "group_by")
    since, until = _query_time("since"), _query_time("until")
    site = request.args.get("site") or None
    _no_nul(site, "site")
    dims = [d.strip() for d in group_by.split(",") if d.strip()]
    if not dims or any(d not in reports.DIMENSIONS for d in dims):
        raise ApiError(400, "group_by must be machine, member, month or site",
                       {"group_by": ", ".join(reports.DIMENSIONS)})
    if since and until and (until - since).days > 366 * 50:
        raise ApiError(400, "the period is too long (50 years at most)", {"until": "too far"})
    report_site: str | int | None = site
    scope = _scope()
    if scope is not None:
        report_site = _report_site(site, scope)
    try:
        rows = reports.usage_report(get_db(), dims, since, until, site=report_site)
    except reports.ReportError as e:
        raise ApiError(400, str(e)) from None
    get_db().commit()  # keep the roll-up refresh the report did
    if fmt == "csv":
        return Response(reports.rows_to_csv(rows, dims), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=usage.csv"})
    return jsonify({"rows": rows})
