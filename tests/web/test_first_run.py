"""The dashboard's first-run guide (issue 15): on a new installation every step is shown with a
link to the page that does it; each step is marked done once done, and the guide disappears when
all are. SQLite and PostgreSQL (the steps are SQL queries)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest

PASSWORD = "correct horse battery"


@pytest.fixture()
def empty_app(db_url: str) -> Iterator[Any]:
    """A new installation: migrated, one admin login, nothing else."""
    from server import services
    from server.app import create_app, get_db
    from server.db import upgrade

    upgrade(db_url)
    app = create_app({"TESTING": True, "DATABASE_URL": db_url, "SECRET_KEY": "test"})
    with app.app_context():
        db = get_db()
        services.users.create_user(db, "admin@example.org", PASSWORD, "admin", actor="test")
        db.commit()
    yield app
    app.extensions["fabpass.engine"].dispose()


def steps(html: str) -> dict[str, tuple[bool, str | None]]:
    """step code -> (done, link) as the dashboard shows them."""
    out = {}
    for m in re.finditer(r'<li class="step( done)?" data-step="(\w+)">(.*?)</li>', html, re.S):
        link = re.search(r'<a href="([^"]+)"', m.group(3))
        out[m.group(2)] = (bool(m.group(1)), link.group(1) if link else None)
    return out


def test_the_guide_walks_a_new_installation_and_disappears(empty_app: Any) -> None:
    from server import services
    from server.app import get_db
    from server.services import provisioning

    actions = sys.modules["fabpass_web_seed"].Actions(empty_app.test_client())
    actions.post("/lang", {"lang": "fr"}, page="/login")
    actions.login("admin@example.org", PASSWORD)
    c = actions.client

    page = c.get("/").get_data(as_text=True)
    assert "Pour commencer" in page
    assert steps(page) == {"site": (False, "/sites"), "machine": (False, "/machines/new"),
                           "member": (False, "/members/new"),
                           "training": (False, "/authorizations/new"), "node": (False, "/nodes")}
    for _, link in steps(page).values():  # every link opens its page
        assert link is not None and c.get(link).status_code == 200, link

    def do(step: str) -> dict[str, tuple[bool, str | None]]:
        with empty_app.app_context():
            db = get_db()
            if step == "site":
                services.sites.create_site(db, "lab", "Fablab de Test", "Europe/Paris", actor="t")
            elif step == "machine":
                services.machines.create_machine(db, "laser", "Découpe laser", "lab",
                                                 kind="laser_cutter", actor="t")
            elif step == "member":
                services.create_member(db, "Zoé Lambert", site="lab", actor="t")
            elif step == "training":
                from sqlalchemy import select

                from server.models import Machine, Member
                member = db.scalars(select(Member.id)).one()
                machine = db.scalars(select(Machine.id)).one()
                services.grant(db, member, machine_id=machine, actor="t")
            else:
                provisioning.provision(db, "laser-node", "laser", broker_url="mqtt://127.0.0.1:1883",
                                       actor="t")
            db.commit()
        return steps(c.get("/").get_data(as_text=True))

    for i, step in enumerate(("site", "machine", "member", "training")):
        now = do(step)
        assert now[step] == (True, None), (step, now)
        assert all(not done for code, (done, _) in now.items()
                   if code not in ("site", "machine", "member", "training")[:i + 1])
    page_done = c.get("/").get_data(as_text=True)
    assert "Pour commencer" in page_done  # the node is still to do
    assert do("node") == {}
    assert "Pour commencer" not in c.get("/").get_data(as_text=True)


def test_the_guide_follows_what_each_person_sees(app: Any, seed: Any) -> None:
    """A node of the other site has spoken: the admin's guide is gone, the lab's manager is still
    asked to provision the lab's node, a trainer is never shown the guide."""
    from datetime import UTC, datetime

    from sqlalchemy import update

    from server.app import get_db
    from server.models import Node

    Actions = sys.modules["fabpass_web_seed"].Actions
    admin, manager, trainer = (Actions(app.test_client()) for _ in range(3))
    admin.login("admin@example.org")
    manager.login("manager@example.org")
    trainer.login("trainer@example.org")
    assert [code for code, (done, _) in steps(admin.client.get("/").get_data(as_text=True)).items()
            if not done] == ["node"]
    with app.app_context():
        db = get_db()
        db.execute(update(Node).where(Node.slug == "printer-1").values(last_seen=datetime.now(UTC)))
        db.commit()
    assert 'class="first-run"' not in admin.client.get("/").get_data(as_text=True)
    left = steps(manager.client.get("/").get_data(as_text=True))
    assert left["node"] == (False, "/nodes") and left["site"] == (True, None)
    page = trainer.client.get("/")
    assert page.status_code == 200 and 'class="first-run"' not in page.get_data(as_text=True)
