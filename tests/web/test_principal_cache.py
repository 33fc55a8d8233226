"""The login's principal is cached briefly (issue 21), yet access ends within a second when
another process (the `fabpass` CLI) deactivates the user or closes its logins, and at once
when this server does (logout)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import delete, update

from server.models import User, WebLogin


def _refused_within(client: Any, seconds: float) -> float:
    """Seconds until `/members` sends the client back to /login (bounded)."""
    started = time.monotonic()
    for _ in range(10_000):
        if client.get("/members").status_code == 302:
            return time.monotonic() - started
        if time.monotonic() - started > seconds + 1.0:
            break
        time.sleep(0.01)
    return float("inf")


def test_principal_is_cached_between_requests(app: Any, actions: Any) -> None:
    assert actions.login("manager@example.org").status_code == 302
    assert actions.client.get("/members").status_code == 200
    cache = app.extensions["fabpass.principals"]
    assert len(cache._rows) == 1  # the page after this one needs no statement for the login


def test_user_deactivated_by_another_process_is_refused_within_a_second(app: Any,
                                                                        actions: Any) -> None:
    assert actions.login("manager@example.org").status_code == 302
    for _ in range(5):  # warm: the principal is in the cache
        assert actions.client.get("/members").status_code == 200
    engine = app.extensions["fabpass.engine"]
    with engine.begin() as conn:  # another connection, as `fabpass` commands do
        conn.execute(update(User).where(User.email == "manager@example.org").values(active=False))
    assert _refused_within(actions.client, 1.0) < 1.0


def test_logins_closed_by_another_process_are_refused_within_a_second(app: Any,
                                                                      actions: Any) -> None:
    assert actions.login("admin@example.org").status_code == 302
    for _ in range(5):
        assert actions.client.get("/members").status_code == 200
    engine = app.extensions["fabpass.engine"]
    with engine.begin() as conn:
        conn.execute(delete(WebLogin))
    assert _refused_within(actions.client, 1.0) < 1.0


def test_logout_here_ends_a_copied_cookie_at_once_even_when_cached(app: Any,
                                                                   actions: Any) -> None:
    assert actions.login("admin@example.org").status_code == 302
    copied = actions.client.get_cookie("session").value
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/members").status_code == 200  # cached now
    actions.client.post("/logout", data={"csrf_token": actions.token("/")})
    assert thief.get("/members").status_code == 302
