"""What every API resource module shares: token authentication and scope, strict input
checks that name the field (never a 500), and list/created responses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flask import Response, g, jsonify, request

from server import auth, services
from server.api import ApiError, bp
from server.app import get_db

if TYPE_CHECKING:
    from server.models import Authorization, Machine, Member

MAX_ID = 2**31 - 1  # PostgreSQL integer


MAX_PAGE = 1_000_000


@bp.before_request
def _authenticate() -> Response | None:
    if request.endpoint == "api.openapi":
        return None
    p = auth.principal_from_bearer(get_db())
    if p is None:
        raise ApiError(401, "a valid API token is required (Authorization: Bearer <token>)")
    g.api_principal = p
    return None


def actor() -> str:
    return auth.me().actor


def require_admin() -> None:
    if auth.me().role != auth.ADMIN:
        raise ApiError(403, "this needs an admin token")


def token_scope() -> frozenset[int] | None:
    """The token's sites for filtering lists (None: an admin token, every site)."""
    return auth.managed_site_ids(auth.me())


def forbidden(what: str) -> ApiError:
    return ApiError(403, f"{what} is outside this token's sites")


def managed_member(db: Any, member_id: int) -> Member:
    """A member the token may edit: homed at its sites, or shared."""
    m = services.get_member(db, member_id)
    if not auth.can_edit_member(auth.me(), m):
        raise forbidden(f"member {m.id}")
    return m


def managed_machine(db: Any, machine_id: int) -> Machine:
    m = services.get_machine(db, machine_id)
    if not auth.can_manage_machine(auth.me(), m):
        raise forbidden(f"machine {m.id}")
    return m


def managed_authorization(db: Any, authorization_id: int) -> Authorization:
    """An authorization the token may revoke: on machines (or a group) of its sites, whatever
    the member's home site."""
    a = services.get_authorization(db, authorization_id)
    if not auth.can_change_authorization(db, auth.me(), a):
        raise forbidden(f"authorization {a.id}")
    return a


def check_site(db: Any, slug: str | None) -> None:
    """Creating (or moving) a member or machine on this site needs a token of that site; no site
    (a shared member) is open to every manager. An admin token is not checked here."""
    if not slug or auth.me().is_admin:
        return
    site = services.get_site_by_slug(db, slug, "site")
    if not auth.can_manage_site(auth.me(), site.id):
        raise forbidden(f"site {slug!r}")


def token_report_site(slug: str | None, scope: frozenset[int]) -> int:
    """The site a manager token's report covers: `site` if it is one of the token's sites (403
    otherwise); without `site`, the token's only site (400 if it has several)."""
    db = get_db()
    sites = {s.slug: s.id for s in services.list_sites(db)}
    if slug is not None:
        sid = sites.get(slug)
        if sid is None or sid not in scope:
            raise ApiError(403, f"site {slug!r} is not one of this token's sites",
                           {"site": "one of this token's sites"})
        return int(sid)
    if len(scope) == 1:
        return next(iter(scope))
    if not scope:
        raise ApiError(403, "this manager token has no site: create a new one with --site")
    slugs = sorted(s for s, i in sites.items() if i in scope)
    raise ApiError(400, "this token reaches several sites: choose one with site",
                   {"site": "one of " + ", ".join(slugs)})


def no_nul(value: Any, path: str = "body") -> None:
    """Reject NUL characters (PostgreSQL text cannot store them) anywhere in the input."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ApiError(400, f"{path}: NUL character not allowed", {path: "NUL not allowed"})
    elif isinstance(value, dict):
        for k, v in value.items():
            no_nul(k, path)
            no_nul(v, f"{k}" if path == "body" else f"{path}.{k}")
    elif isinstance(value, list):
        for v in value:
            no_nul(v, path)


def json_body(allowed: tuple[str, ...]) -> dict[str, Any]:
    data = request.get_json(silent=True, force=True)
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    no_nul(data)
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ApiError(400, "unknown fields", {k: "unknown field" for k in unknown})
    return data


def check_id(value: Any, field: str, *, required: bool = True, status: int = 400) -> int | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value > MAX_ID:
        if status == 404:
            raise ApiError(404, f"{field} not found")
        raise ApiError(400, f"{field} must be a positive integer id", {field: "a positive integer"})
    return value


def path_id(value: int, what: str) -> int:
    return int(check_id(value, what, status=404) or 0)


def query_int(name: str, default: int | None = None, lo: int = 1, hi: int = MAX_ID) -> int | None:
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


def query_time(name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    no_nul(raw, name)
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


def page_args() -> tuple[int, int]:
    page = query_int("page", 1, 1, MAX_PAGE) or 1
    per_page = query_int("per_page", services.DEFAULT_PER_PAGE, 1, services.MAX_PER_PAGE)
    return page, per_page or services.DEFAULT_PER_PAGE


def listing(page: services.Page[Any], ser: Any) -> Response:
    return jsonify({"items": [ser(x) for x in page.items], "total": page.total,
                    "page": page.page, "per_page": page.per_page})


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def created(obj: dict[str, Any]) -> tuple[Response, int]:
    return jsonify(obj), 201
