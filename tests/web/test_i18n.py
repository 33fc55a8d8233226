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
