"""French and English: browser language by default, a visible FR/EN switch kept in the session."""

from __future__ import annotations

from typing import Any


def test_browser_language_is_the_default(client: Any) -> None:
    fr = client.get("/login", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"})
    assert "Se connecter" in fr.get_data(as_text=True)
    assert '<html lang="fr">' in fr.get_data(as_text=True)
    en = client.get("/login", headers={"Accept-Language": "de,en;q=0.5"})
    assert "Log in" in en.get_data(as_text=True)


def test_switch_is_kept_in_the_session(actions: Any) -> None:
    c = actions.client
    r = actions.post("/lang", {"lang": "fr", "next": "/login"}, page="/login")
    assert r.status_code == 302 and r.headers["Location"].endswith("/login")
    assert "Se connecter" in c.get("/login", headers={"Accept-Language": "en"}).get_data(as_text=True)
    actions.login("admin@example.org")  # survives the session renewal at login
    page = c.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Les machines en ce moment" in page and "Libre" in page
    actions.post("/lang", {"lang": "en"})
    assert "Machines right now" in c.get("/").get_data(as_text=True)
    assert actions.post("/lang", {"lang": "xx"}).status_code == 400
    r = actions.post("/lang", {"lang": "fr", "next": "//evil.example/"})
    assert r.headers["Location"] == "/"  # no open redirect


def test_field_errors_in_french(actions: Any) -> None:
    actions.post("/lang", {"lang": "fr"}, page="/login")
    actions.login("manager@example.org")
    r = actions.post("/members/new", {"name": "", "email": "not-an-email"}, page="/members/new")
    assert r.status_code == 400
    html = r.get_data(as_text=True)
    assert "Ce champ est requis" in html or "Ce champ est obligatoire" in html
    assert 'aria-describedby="name-err"' in html


def test_service_errors_in_french(app: Any, actions: Any) -> None:
    """A refusal from the services (here: stop a machine that has no node) reaches a French
    page in French, with its values; the API and the CLI keep the English message."""
    from server import services
    from server.errors import Conflict

    with app.app_context():
        db = app.extensions["fabpass.sessionmaker"]()
        m = services.create_machine(db, "cnc-1", "CNC", "lab", kind="cnc", actor="test")
        db.commit()
        mid = m.id
        db.close()
    actions.post("/lang", {"lang": "fr"}, page="/login")
    actions.login("admin@example.org")
    r = actions.post(f"/machines/{mid}/stop", {}, page=f"/machines/{mid}")
    assert r.status_code == 302
    html = actions.client.get(r.headers["Location"]).get_data(as_text=True)
    assert "la machine &#39;cnc-1&#39; n’a pas de boîtier" in html
    err = Conflict("machine %(slug)r has no node", {"slug": "cnc-1"})
    assert err.message == str(err) == "machine 'cnc-1' has no node"


def test_report_and_maintenance_errors_in_french(app: Any, seed: Any, actions: Any) -> None:
    """Report and maintenance errors are `ServerError`s with a template and parameters: a French
    page shows them in French (they used to be flashed as English `str(exc)`)."""
    from server.errors import ServerError
    from server.reports import ReportError
    from server.services.maintenance import MaintenanceError

    assert issubclass(ReportError, ServerError) and issubclass(MaintenanceError, ServerError)
    actions.post("/lang", {"lang": "fr"}, page="/login")
    actions.login("admin@example.org")
    html = actions.client.get("/reports/?site=nowhere").get_data(as_text=True)
    assert "lieu : pas de lieu &#39;nowhere&#39;" in html
    page = f"/reports/machines/{seed.laser}"
    r = actions.post(f"{page}/tasks", {"name": "Lentilles", "interval": "beaucoup"}, page=page)
    assert r.status_code == 302
    html = actions.client.get(r.headers["Location"]).get_data(as_text=True)
    assert "intervalle : un nombre d&#39;heures d&#39;activité" in html
    r = actions.post(f"{page}/log", {"task_id": "x1"}, page=page)
    html = actions.client.get(r.headers["Location"]).get_data(as_text=True)
    assert "pas de tâche x1 sur cette machine" in html
    err = ReportError("site: no site %(site)r", {"site": "nowhere"})
    assert err.code == "invalid" and err.message == "site: no site 'nowhere'"


def test_views_never_decide_on_message_text() -> None:
    """Errors carry a code and fields; a view that reads `.message` to decide is a regression."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "server"
    bad = re.compile(r"""["'][^"']*["']\s+(not\s+)?in\s+\w+\.message|\.message\s*==""")
    offenders = [f"{p.relative_to(root)}:{i}" for part in ("web", "api", "cli")
                 for p in sorted((root / part).rglob("*.py"))
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if bad.search(line)]
    assert offenders == []
