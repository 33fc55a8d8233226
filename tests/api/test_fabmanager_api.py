"""`PUT/GET /api/v1/integrations/fabmanager` and `fabpass sync fabmanager` (issue 18)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent.parent / "server"))

from fabmanager_standin import FabmanagerStandIn, named, user, user_training  # noqa: E402

from fabpass.cli import main  # noqa: E402

BODY = {"url": "http://127.0.0.1:9/", "token": "k-123", "site": "lab",
        "trainings": {"1": {"machine": "laser-1"}, "2": {"group": "lasers"}},
        "machines": {"11": "laser-1"}}


def test_put_stores_settings_and_never_shows_the_token(api: Any, seed: Any) -> None:
    r = api("PUT", "/integrations/fabmanager", BODY)
    assert r.status_code == 200, r.get_json()
    out = r.get_json()
    assert out["url"] == "http://127.0.0.1:9" and out["machines"] == {"11": "laser-1"}
    assert out["trainings"] == BODY["trainings"] and "token" not in out
    got = api("GET", "/integrations/fabmanager").get_json()
    assert "token" not in got and got["configured"] and got["site"] == "lab"
    assert "k-123" not in api("GET", "/integrations/fabmanager").get_data(as_text=True)


def test_put_is_admin_only_and_checks_each_field(api: Any, seed: Any) -> None:
    assert api("PUT", "/integrations/fabmanager", BODY,
               token=seed.manager_token).status_code == 403
    bad = api("PUT", "/integrations/fabmanager", {**BODY, "machines": {"11": "nope"}})
    assert bad.status_code == 404
    bad = api("PUT", "/integrations/fabmanager",
              {**BODY, "trainings": {"1": {"room": "x"}}})
    assert bad.status_code == 400 and "trainings.1" in bad.get_json()["error"]["fields"]
    assert api("PUT", "/integrations/fabmanager", {**BODY, "extra": 1}).status_code == 400


def test_cli_sync_dry_run_then_run_and_a_refused_key(api: Any, api_app: Any, monkeypatch: Any
                                                    ) -> None:
    app = api_app[0]
    monkeypatch.setenv("FABPASS_DATABASE_URL", app.config["DATABASE_URL"])
    with FabmanagerStandIn() as fake:
        fake.data["users"] = [user(7, "zoe@example.org", "Zoé", "Blanc")]
        fake.data["trainings"] = [named(1, "Laser", "laser")]
        fake.data["user_trainings"] = [user_training(1, 7, 1)]
        r = api("PUT", "/integrations/fabmanager", {**BODY, "url": fake.url, "token": fake.token})
        assert r.status_code == 200
        runner = CliRunner()
        dry = runner.invoke(main, ["sync", "fabmanager", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "would create member zoe@example.org" in dry.output
        assert api("GET", "/members?q=zoe").get_json()["total"] == 0
        done = runner.invoke(main, ["sync", "fabmanager"])
        assert done.exit_code == 0, done.output
        assert api("GET", "/members?q=zoe").get_json()["total"] == 1
        fake.token = "rotated"
        refused = runner.invoke(main, ["sync", "fabmanager"])
        assert refused.exit_code == 1 and "refused the API key" in refused.output
        last = api("GET", "/integrations/fabmanager").get_json()["last_run"]
        assert last["ok"] is False and "refused" in last["message"]
