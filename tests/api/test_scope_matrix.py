"""The scope rule (contract section 6) as one table, run through the web UI and the REST API.

A manager of `lab` (the web login manager@example.org, and the API token of `lab`) faces the
seed of tests/web/seed.py: `lab` holds the laser, Alice and Tom; `other` holds the printer and
Bob. Every row says what the rule answers; each channel turns its HTTP answer into the same
words, so the web and the API cannot drift apart again. SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server import services
from server.app import get_db
from server.models import UsageSession

PASSWORD = "correct horse battery"
BOB_EMAIL = "bob@other.example"
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def _prepare(app: Any, seed: Any) -> None:
    """Bob gets an e-mail; each machine a closed session and an audited lock/unlock."""
    with app.app_context():
        db = get_db()
        services.update_member(db, seed.bob, email=BOB_EMAIL, actor="test")
        for i, machine in enumerate((seed.laser, seed.printer)):
            db.add(UsageSession(session_uuid=f"{i + 1}" * 8 + "-2222-4222-8222-222222222222",
                                machine_id=machine, member_id=seed.alice, badge_uid="04A1B2C3",
                                started_at=T0 + timedelta(hours=i),
                                ended_at=T0 + timedelta(hours=i, minutes=30), duration_s=1800,
                                active_s=900, end_reason="badge_out"))
        services.set_machine_lock(db, seed.laser, True, "own-site-lock", actor="test")
        services.set_machine_lock(db, seed.printer, True, "other-site-lock", actor="test")
        services.set_machine_lock(db, seed.laser, False, actor="test")
        services.set_machine_lock(db, seed.printer, False, actor="test")
        db.commit()


class Web:
    """The manager's browser: logged in, posting forms with the page's CSRF token."""

    def __init__(self, app: Any) -> None:
        self.client = app.test_client()
        self.post("/login", {"email": "manager@example.org", "password": PASSWORD}, "/login")

    def get(self, path: str) -> Any:
        return self.client.get(path)

    def post(self, path: str, data: dict[str, Any], page: str = "/") -> Any:
        m = CSRF.search(self.client.get(page).get_data(as_text=True))
        assert m, f"no CSRF token on {page}"
        return self.client.post(path, data={**data, "csrf_token": m.group(1)})


class Api:
    def __init__(self, app: Any, token: str) -> None:
        self.client = app.test_client()
        self.token = token

    def __call__(self, method: str, path: str, json: Any = None) -> Any:
        return self.client.open("/api/v1" + path, method=method, json=json,
                                headers={"Authorization": f"Bearer {self.token}"})


def _verdict(r: Any) -> str:
    """HTTP status in the rule's words: refused, or allowed."""
    if r.status_code == 403:
        return "refused"
    assert r.status_code < 400, (r.status_code, r.get_data(as_text=True)[:300])
    return "allowed"


def _page_text(r: Any) -> str:
    assert r.status_code == 200, r.status_code
    return str(r.get_data(as_text=True))


def _items(r: Any) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.get_data(as_text=True)
    return list(r.get_json()["items"])


# -------------------------------------------------------------- the two channels, row by row
#
# Each function answers one row for one channel: `web(web, seed)` and `api(api, seed)`.


def web_member_contact(w: Web, s: Any, member: str) -> str:
    html = _page_text(w.get(f"/members/{getattr(s, member)}"))
    email = {"alice": "alice@example.org", "bob": BOB_EMAIL}[member]
    return "with contact" if email in html else "without contact"


def api_member_contact(a: Api, s: Any, member: str) -> str:
    r = a("GET", f"/members/{getattr(s, member)}")
    assert r.status_code == 200, r.get_data(as_text=True)
    return "with contact" if "email" in r.get_json() else "without contact"


def web_members_list(w: Web, s: Any) -> str:
    html = _page_text(w.get("/members?inactive=1"))
    names = all(n in html for n in ("Alice Martin", "Bob Durand", "Tom Trainer"))
    return f"all members, contact {'shown' if BOB_EMAIL in html else 'hidden'} elsewhere" \
        if names else "some members"


def api_members_list(a: Api, s: Any) -> str:
    items = {m["id"]: m for m in _items(a("GET", "/members?per_page=500"))}
    names = {s.alice, s.bob, s.tom} <= set(items)
    shown = "email" in items.get(s.bob, {})
    return f"all members, contact {'shown' if shown else 'hidden'} elsewhere" \
        if names else "some members"


def web_edit_member(w: Web, s: Any, member: str) -> str:
    mid = getattr(s, member)
    return _verdict(w.post(f"/members/{mid}/edit", {"name": f"{member.title()} E.", "site": ""},
                           f"/members/{mid}"))


def api_edit_member(a: Api, s: Any, member: str) -> str:
    return _verdict(a("PATCH", f"/members/{getattr(s, member)}", {"name": f"{member.title()} E."}))


def web_sessions_of(w: Web, s: Any, machine: str) -> str:
    html = _page_text(w.get(f"/sessions?machine_id={getattr(s, machine)}"))
    name = {"laser": "Laser cutter", "printer": "3D printer"}[machine]
    rows = html.split("<tbody>", 1)[-1]
    return "listed" if name in rows else "not listed"


def api_sessions_of(a: Api, s: Any, machine: str) -> str:
    items = _items(a("GET", f"/sessions?machine_id={getattr(s, machine)}"))
    return "listed" if items else "not listed"


def web_machine_page(w: Web, s: Any, machine: str) -> str:
    return _verdict(w.get(f"/machines/{getattr(s, machine)}"))


def api_machine_page(a: Api, s: Any, machine: str) -> str:
    return _verdict(a("GET", f"/machines/{getattr(s, machine)}"))


def web_nodes(w: Web, s: Any) -> str:
    html = _page_text(w.get("/nodes"))
    return ",".join(n for n in ("laser-1", "printer-1") if f">{n}<" in html or f"{n}</" in html)


def api_nodes(a: Api, s: Any) -> str:
    return ",".join(sorted(n["node"] for n in _items(a("GET", "/nodes"))))


def web_audit(w: Web, s: Any) -> str:
    html = _page_text(w.get("/audit?action=machine.lock"))
    return ",".join(r for r in ("own-site-lock", "other-site-lock") if r in html)


def web_grant(w: Web, s: Any, member: str, machine: str) -> str:
    r = w.post("/authorizations/new", {"members": getattr(s, member),
                                       "target": f"machine:{getattr(s, machine)}",
                                       "role": "user"}, "/authorizations/new")
    if r.status_code == 400:  # the machine is not among the choices offered to this login
        return "refused"
    return _verdict(r)


def api_grant(a: Api, s: Any, member: str, machine: str) -> str:
    return _verdict(a("POST", "/authorizations", {"member_id": getattr(s, member),
                                                  "machine_id": getattr(s, machine)}))


def web_revoke(w: Web, s: Any, training: str) -> str:
    aid = getattr(s, training)
    return _verdict(w.post(f"/authorizations/{aid}/revoke", {"reason": "matrix"},
                           "/authorizations"))


def api_revoke(a: Api, s: Any, training: str) -> str:
    return _verdict(a("DELETE", f"/authorizations/{getattr(s, training)}?reason=matrix"))


Row = tuple[str, str, Callable[..., str], Callable[..., str] | None, tuple[Any, ...]]

# (what the manager of `lab` tries, what the rule answers, web, api (None: no such route), args)
MATRIX: list[Row] = [
    ("read a member homed at lab", "with contact", web_member_contact, api_member_contact,
     ("alice",)),
    ("read a member homed elsewhere", "without contact", web_member_contact, api_member_contact,
     ("bob",)),
    ("list the members", "all members, contact hidden elsewhere", web_members_list,
     api_members_list, ()),
    ("edit a member homed at lab", "allowed", web_edit_member, api_edit_member, ("alice",)),
    ("edit a member homed elsewhere", "refused", web_edit_member, api_edit_member, ("bob",)),
    ("sessions on a machine of lab", "listed", web_sessions_of, api_sessions_of, ("laser",)),
    ("sessions on a machine elsewhere", "not listed", web_sessions_of, api_sessions_of,
     ("printer",)),
    ("a machine page of lab", "allowed", web_machine_page, api_machine_page, ("laser",)),
    ("a machine page elsewhere", "refused", web_machine_page, api_machine_page, ("printer",)),
    ("the nodes", "laser-1", web_nodes, api_nodes, ()),
    ("the audit log", "own-site-lock", web_audit, None, ()),
    ("train a member of elsewhere on a machine of lab", "allowed", web_grant, api_grant,
     ("bob", "laser")),
    ("train a member of lab on a machine elsewhere", "refused", web_grant, api_grant,
     ("alice", "printer")),
    ("revoke a training on a machine elsewhere", "refused", web_revoke, api_revoke,
     ("bob_printer",)),
    ("revoke a training on a machine of lab", "allowed", web_revoke, api_revoke,
     ("alice_laser",)),
]


@pytest.mark.parametrize("channel", ["web", "api"])
def test_scope_matrix(channel: str, api_app: tuple[Any, Any]) -> None:
    app, seed = api_app
    _prepare(app, seed)
    client: Any = Web(app) if channel == "web" else Api(app, seed.manager_token)
    answers = {}
    for what, _expected, web, api, args in MATRIX:
        fn = web if channel == "web" else api
        if fn is not None:
            answers[what] = fn(client, seed, *args)
    expected = {what: exp for what, exp, web, api, _args in MATRIX
                if (web if channel == "web" else api) is not None}
    assert answers == expected
