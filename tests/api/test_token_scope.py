"""API tokens bound to sites: a manager token follows the scope rule of a manager login
(contract section 6): every member readable (e-mail only of members homed at its sites),
sessions, machines and nodes of its sites only, trainings on its machines for any member.

The seed (tests/web/seed.py) has two sites: `lab` (the laser, Alice, Tom) and `other` (the
printer, Bob); `seed.manager_token` is a manager token of `lab`, `seed.token` an admin token.
Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from server import services
from server.app import get_db
from server.cli import users as users_cli
from server.errors import Invalid
from server.models import ApiToken, UsageSession, UserRole
from server.security import hash_token, new_token

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _err(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.get_data(as_text=True)
    body = r.get_json()["error"]
    assert set(body) == {"code", "message", "fields"}
    if code:
        assert body["code"] == code
    return dict(body)


def _forbidden(r: Any) -> None:
    _err(r, 403, "forbidden")


def _token(app: Any, role: str, sites: list[str]) -> str:
    with app.app_context():
        db = get_db()
        _row, plain = services.create_token(db, f"t-{role}-{len(sites)}", role, sites,
                                            actor="test")
        db.commit()
    return plain


def _legacy_manager_token(app: Any) -> str:
    """A manager token as created before tokens had sites: no site at all."""
    plain = new_token()
    with app.app_context():
        db = get_db()
        db.add(ApiToken(name="old", token_hash=hash_token(plain), prefix=plain[:12],
                        role=UserRole.manager))
        db.commit()
    return plain


def _data(api: Any, api_app: Any, seed: Any) -> dict[str, Any]:
    """A shared member, a badge for Bob, a group across both sites with a training on it, and a
    closed session on each machine (plus one without a machine)."""
    shared = api("POST", "/members", {"name": "Sam Shared"}).get_json()["id"]
    assert api("POST", f"/members/{seed.bob}/badges", {"uid": "04B0B0B0"}).status_code == 201
    with api_app[0].app_context():
        db = get_db()
        mixed = services.create_group(db, "mixed", "Both sites", [seed.laser, seed.printer],
                                      actor="test")
        alice_mixed = services.grant(db, seed.alice, group_id=mixed.id, actor="test")
        alice_lasers = services.grant(db, seed.alice, group_id=seed.group, actor="test")
        for i, machine in enumerate((seed.laser, seed.printer, None)):
            db.add(UsageSession(session_uuid=f"{i + 1}" * 8 + "-1111-4111-8111-111111111111",
                                machine_id=machine, member_id=seed.alice, badge_uid="04A1B2C3",
                                started_at=T0 + timedelta(hours=i),
                                ended_at=T0 + timedelta(hours=i, minutes=30), duration_s=1800,
                                active_s=900, end_reason="badge_out"))
        db.commit()
        ids = {"shared": shared, "mixed": mixed.id, "alice_mixed": alice_mixed.id,
               "alice_lasers": alice_lasers.id}
    return ids


def _all(api: Any, path: str, token: str) -> tuple[list[dict[str, Any]], int]:
    r = api("GET", path + ("&" if "?" in path else "?") + "per_page=500", token=token)
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["total"] == len(body["items"])
    return body["items"], body["total"]


def test_manager_token_lists_by_the_scope_rule(api: Any, api_app: Any, seed: Any) -> None:
    ids = _data(api, api_app, seed)
    mgr = seed.manager_token
    members, _ = _all(api, "/members", mgr)
    # the member base is shared: every member, but Bob (homed at `other`) without his e-mail
    assert {m["id"] for m in members} == {seed.alice, seed.bob, seed.tom, ids["shared"]}
    by_id = {m["id"]: m for m in members}
    assert "email" not in by_id[seed.bob] and by_id[seed.bob]["badges"]
    assert all("email" in by_id[i] for i in (seed.alice, seed.tom, ids["shared"]))
    machines, _ = _all(api, "/machines", mgr)
    assert [m["slug"] for m in machines] == ["laser-1"]
    assert _all(api, "/machines?site=other", mgr)[1] == 0
    sessions, _ = _all(api, "/sessions", mgr)
    assert [s["machine"] for s in sessions] == ["laser-1"]
    assert _all(api, f"/sessions?machine_id={seed.printer}", mgr)[1] == 0
    nodes, _ = _all(api, "/nodes", mgr)
    assert [n["node"] for n in nodes] == ["laser-1"]
    auths, _ = _all(api, "/authorizations", mgr)
    # every member's trainings are readable (to recognise and train a visitor)
    assert {seed.bob_printer, ids["alice_mixed"], seed.alice_laser,
            ids["alice_lasers"]} <= {a["id"] for a in auths}
    assert _all(api, f"/authorizations?member_id={seed.bob}", mgr)[1] == 1
    page = api("GET", "/members?per_page=1&page=2", token=mgr).get_json()
    assert page["total"] == 4 and len(page["items"]) == 1
    # an e-mail hidden from the token does not match a search either
    bob_email = "bob@other.example"
    assert api("PATCH", f"/members/{seed.bob}", {"email": bob_email}).status_code == 200
    assert _all(api, f"/members?q={bob_email}", mgr)[1] == 0
    assert _all(api, f"/members?q={bob_email}", seed.token)[1] == 1

    # an admin token sees everything
    members, _ = _all(api, "/members", seed.token)
    assert {seed.alice, seed.bob, seed.tom, ids["shared"]} <= {m["id"] for m in members}
    assert {m["slug"] for m in _all(api, "/machines", seed.token)[0]} == {"laser-1", "printer-1"}
    assert len(_all(api, "/sessions", seed.token)[0]) == 3
    assert {n["node"] for n in _all(api, "/nodes", seed.token)[0]} == {"laser-1", "printer-1"}
    assert {seed.bob_printer, ids["alice_mixed"]} <= {
        a["id"] for a in _all(api, "/authorizations", seed.token)[0]}


def test_manager_token_gets_403_on_another_site(api: Any, api_app: Any, seed: Any) -> None:
    ids = _data(api, api_app, seed)

    def mgr(method: str, path: str, json: Any = None) -> Any:
        return api(method, path, json, token=seed.manager_token)

    # another site's member: read without contact details, not changed
    r = mgr("GET", f"/members/{seed.bob}")
    assert r.status_code == 200 and "email" not in r.get_json()
    _forbidden(mgr("PATCH", f"/members/{seed.bob}", {"name": "Bobby"}))
    _forbidden(mgr("DELETE", f"/members/{seed.bob}"))
    _forbidden(mgr("POST", f"/members/{seed.bob}/badges", {"uid": "04B0B0B1"}))
    _forbidden(mgr("PATCH", "/badges/04B0B0B0", {"status": "lost"}))
    _forbidden(mgr("GET", f"/machines/{seed.printer}"))
    _forbidden(mgr("PATCH", f"/machines/{seed.printer}", {"locked": True}))
    # trainings are read by anyone, changed only on the token's machines
    assert mgr("GET", f"/authorizations/{seed.bob_printer}").status_code == 200
    _forbidden(mgr("DELETE", f"/authorizations/{seed.bob_printer}"))
    assert mgr("GET", f"/authorizations/{ids['alice_mixed']}").status_code == 200
    _forbidden(mgr("DELETE", f"/authorizations/{ids['alice_mixed']}"))  # group across both
    # creating on another site, moving a member there, training on its machines or members
    _forbidden(mgr("POST", "/members", {"name": "Eve", "site": "other"}))
    _forbidden(mgr("PATCH", f"/members/{seed.alice}", {"site": "other"}))
    _forbidden(mgr("POST", "/machines", {"slug": "cnc-9", "name": "CNC", "site": "other"}))
    _forbidden(mgr("POST", "/authorizations", {"member_id": seed.alice,
                                               "machine_id": seed.printer}))
    _forbidden(mgr("POST", "/authorizations", {"member_id": seed.tom, "group_id": ids["mixed"]}))
    # ... but another site's member may be trained on the token's machines
    r = mgr("POST", "/authorizations", {"member_id": seed.bob, "machine_id": seed.laser})
    assert r.status_code == 201, r.get_data(as_text=True)
    assert mgr("DELETE", f"/authorizations/{r.get_json()['id']}").status_code == 204
    # nothing changed
    bob = api("GET", f"/members/{seed.bob}").get_json()
    assert bob["name"] == "Bob Durand" and bob["active"] is True
    assert bob["badges"][0]["status"] == "active"
    printer = api("GET", f"/machines/{seed.printer}").get_json()
    assert printer["locked"] is False
    assert api("GET", f"/authorizations/{seed.bob_printer}").get_json()["valid"] is True
    assert api("GET", f"/members/{seed.alice}").get_json()["site"] == "lab"
    assert _all(api, "/machines?site=other", seed.token)[1] == 1
    # unknown ids stay 404, bad input stays 400
    _err(mgr("GET", "/members/999999"), 404)
    _err(mgr("POST", "/members", {"name": "Eve", "site": "nowhere"}), 400)

    # its own site, and shared members, work as before
    assert mgr("GET", f"/members/{seed.alice}").status_code == 200
    assert mgr("PATCH", f"/members/{ids['shared']}", {"name": "Sam S."}).status_code == 200
    r = mgr("POST", "/members", {"name": "Eve", "site": "lab"})
    assert r.status_code == 201 and r.get_json()["site"] == "lab"
    eve = r.get_json()["id"]
    assert mgr("POST", "/members", {"name": "Nobody's"}).status_code == 201
    assert mgr("POST", f"/members/{eve}/badges", {"uid": "04E0E0E0"}).status_code == 201
    assert mgr("PATCH", "/badges/04E0E0E0", {"status": "lost"}).status_code == 200
    assert mgr("PATCH", f"/members/{eve}", {"site": None}).status_code == 200  # to shared
    r = mgr("POST", "/machines", {"slug": "cnc-1", "name": "CNC", "site": "lab", "kind": "cnc"})
    assert r.status_code == 201, r.get_data(as_text=True)
    assert mgr("PATCH", f"/machines/{seed.laser}", {"locked": True}).status_code == 200
    r = mgr("POST", "/authorizations", {"member_id": eve, "machine_id": seed.laser})
    assert r.status_code == 201
    assert mgr("GET", f"/authorizations/{r.get_json()['id']}").status_code == 200
    r = mgr("POST", "/authorizations", {"member_id": eve, "group_id": seed.group})
    assert r.status_code == 201
    assert mgr("DELETE", f"/authorizations/{r.get_json()['id']}").status_code == 204
    assert mgr("DELETE", f"/members/{eve}").status_code == 204

    # an admin token may do all of it
    assert api("PATCH", f"/machines/{seed.printer}", {"locked": True}).status_code == 200
    assert api("DELETE", f"/authorizations/{ids['alice_mixed']}").status_code == 204
    assert api("POST", "/members", {"name": "Eve B", "site": "other"}).status_code == 201


def test_manager_token_reports_only_its_sites(api: Any, api_app: Any, seed: Any) -> None:
    _data(api, api_app, seed)
    app = api_app[0]

    def report(token: str, query: str = "") -> Any:
        return api("GET", f"/reports/usage?group_by=site{query}", token=token)

    r = report(seed.manager_token)  # its only site by default
    assert r.status_code == 200, r.get_data(as_text=True)
    assert [row["site"] for row in r.get_json()["rows"]] == ["lab"]
    r = api("GET", "/reports/usage?group_by=machine", token=seed.manager_token)
    assert [row["machine"] for row in r.get_json()["rows"]] == ["laser-1"]
    assert [row["site"] for row in report(seed.manager_token, "&site=lab").get_json()["rows"]
            ] == ["lab"]
    e = _err(report(seed.manager_token, "&site=other"), 403, "forbidden")
    assert "site" in e["fields"]
    _forbidden(report(seed.manager_token, "&site=nowhere"))
    r = api("GET", "/reports/usage?group_by=machine&format=csv", token=seed.manager_token)
    assert r.status_code == 200 and "printer-1" not in r.get_data(as_text=True)

    both = _token(app, "manager", ["lab", "other"])
    e = _err(report(both), 400)
    assert "site" in e["fields"] and "lab" in e["fields"]["site"]
    assert [row["site"] for row in report(both, "&site=other").get_json()["rows"]] == ["other"]
    assert {m["slug"] for m in _all(api, "/machines", both)[0]} == {"laser-1", "printer-1"}

    # admin: every site, or one
    assert {row["site"] for row in report(seed.token).get_json()["rows"]} == {"lab", "other"}
    assert [row["site"] for row in report(seed.token, "&site=other").get_json()["rows"]
            ] == ["other"]


def test_manager_token_without_sites_reaches_only_shared_records(api: Any, api_app: Any,
                                                                 seed: Any) -> None:
    ids = _data(api, api_app, seed)
    old = _legacy_manager_token(api_app[0])
    members = _all(api, "/members", old)[0]
    assert [m["id"] for m in members if "email" in m] == [ids["shared"]]
    for path in ("/machines", "/sessions", "/nodes"):
        assert _all(api, path, old)[1] == 0, path
    r = api("GET", f"/members/{seed.alice}", token=old)
    assert r.status_code == 200 and "email" not in r.get_json()
    _forbidden(api("PATCH", f"/members/{seed.alice}", {"name": "A"}, token=old))
    _forbidden(api("POST", "/members", {"name": "X", "site": "lab"}, token=old))
    _forbidden(api("GET", "/reports/usage?group_by=site", token=old))
    assert api("GET", f"/members/{ids['shared']}", token=old).status_code == 200


# ---------------------------------------------------------------- fabpass token create


def _runner(api_app: Any) -> CliRunner:
    return CliRunner(env={"FABPASS_DATABASE_URL": api_app[0].config["DATABASE_URL"],
                          "FABPASS_SECRET_KEY": "x"})


def _token_sites(api_app: Any, plain: str) -> tuple[str, list[str]] | None:
    with api_app[0].app_context():
        db = get_db()
        row = db.scalar(sa.select(ApiToken).where(ApiToken.token_hash == hash_token(plain)))
        if row is None:
            return None
        return row.role.value, sorted(s.slug for s in row.sites)


def _token_count(api_app: Any) -> int:
    with api_app[0].app_context():
        return int(get_db().scalar(sa.select(sa.func.count()).select_from(ApiToken)) or 0)


def test_cli_token_sites(api: Any, api_app: Any, seed: Any) -> None:
    runner = _runner(api_app)
    before = _token_count(api_app)

    r = runner.invoke(users_cli.token, ["create", "--name", "m", "--role", "manager"])
    assert r.exit_code == 2 and "--site" in r.output, r.output
    r = runner.invoke(users_cli.token, ["create", "--name", "a", "--site", "lab"])
    assert r.exit_code == 2 and "--site" in r.output, r.output
    r = runner.invoke(users_cli.token, ["create", "--name", "a", "--role", "admin", "--site", "lab"])
    assert r.exit_code == 2 and "--site" in r.output, r.output
    r = runner.invoke(users_cli.token, ["create", "--name", "m", "--role", "manager", "--site", "lab",
                                  "--site", "nowhere"])
    assert r.exit_code == 1 and "nowhere" in r.output, r.output
    assert _token_count(api_app) == before  # nothing created by the refusals

    r = runner.invoke(users_cli.token, ["create", "--name", "m", "--role", "manager", "--site", "lab"])
    assert r.exit_code == 0, r.output
    plain = r.stdout.strip()
    assert plain.startswith("fp_") and "\n" not in plain
    assert _token_sites(api_app, plain) == ("manager", ["lab"])
    assert [m["slug"] for m in _all(api, "/machines", plain)[0]] == ["laser-1"]

    r = runner.invoke(users_cli.token, ["create", "--name", "m2", "--role", "manager",
                                  "--site", "other", "--site", "lab"])
    assert r.exit_code == 0, r.output
    assert _token_sites(api_app, r.stdout.strip()) == ("manager", ["lab", "other"])

    r = runner.invoke(users_cli.token, ["create", "--name", "adm"])
    assert r.exit_code == 0, r.output
    assert _token_sites(api_app, r.stdout.strip()) == ("admin", [])


def test_create_token_rules(api_app: Any) -> None:
    """The service keeps the CLI's rules for any other caller."""
    with api_app[0].app_context():
        db = get_db()
        for role, sites in (("manager", []), ("admin", ["lab"]), ("manager", ["nowhere"])):
            with pytest.raises(Invalid):
                services.create_token(db, "x", role, sites, actor="test")
            db.rollback()
        row, _plain = services.create_token(db, "x", "manager", ["lab", "lab"], actor="test")
        assert [s.slug for s in row.sites] == ["lab"]
        db.rollback()


def test_migration_0003_up_and_down(db_url: str) -> None:
    """0003 adds the token-site table on a database at 0002 (old tokens keep working, with no
    site), and its downgrade removes it again."""
    from alembic import command

    from server.db import alembic_config, make_engine, upgrade

    upgrade(db_url, "0002")
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO api_tokens (id, name, token_hash, prefix, role, created_at) "
                "VALUES (1, 'old', 'h', 'fp_x', 'manager', '2026-11-01 00:00:00')"))
        upgrade(db_url)
        with engine.begin() as conn:
            assert "api_token_sites" in sa.inspect(conn).get_table_names()
            conn.execute(sa.text("INSERT INTO sites (id, slug, name, timezone, created_at) "
                                 "VALUES (1, 'lab', 'Lab', 'UTC', '2026-11-01 00:00:00')"))
            conn.execute(sa.text("INSERT INTO api_token_sites (token_id, site_id) VALUES (1, 1)"))
        command.downgrade(alembic_config(db_url), "0002")
        with engine.connect() as conn:
            assert "api_token_sites" not in sa.inspect(conn).get_table_names()
            assert conn.scalar(sa.text("SELECT count(*) FROM api_tokens")) == 1
        upgrade(db_url)
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT count(*) FROM api_token_sites")) == 0
    finally:
        engine.dispose()
