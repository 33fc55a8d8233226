"""The Fab-manager page (issue 18): admin only, the mapping editor, runs and problems in
English and French, against the local stand-in of Fab-manager."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent / "server"))

from fabmanager_standin import FabmanagerStandIn, named, user, user_training  # noqa: E402

PAGE = "/integrations/fabmanager"


def test_managers_cannot_open_it(actions: Any) -> None:
    actions.login("manager@example.org")
    assert actions.client.get(PAGE).status_code == 403


def test_mapping_editor_run_and_problems_in_both_languages(actions: Any) -> None:
    c = actions.client
    actions.login("admin@example.org")
    with FabmanagerStandIn() as fake:
        fake.data["users"] = [user(7, "zoe@example.org", "Zoé", "Blanc")]
        fake.data["trainings"] = [named(1, "Laser", "laser"), named(2, "Wood", "wood")]
        fake.data["user_trainings"] = [user_training(1, 7, 1), user_training(2, 7, 2)]
        bad = actions.post(PAGE, {"url": fake.url, "token": fake.token, "site": "lab",
                                  "trainings": "1 = room:laser-1", "machines": ""}, page=PAGE)
        assert bad.status_code == 400
        r = actions.post(PAGE, {"url": fake.url, "token": fake.token, "site": "lab",
                                "trainings": "1 = machine:laser-1\n# wood: later",
                                "machines": ""}, page=PAGE)
        assert r.status_code == 302
        page = c.get(PAGE).get_data(as_text=True)
        assert "1 = machine:laser-1" in page and fake.token not in page
        assert actions.post(PAGE + "/run", {"dry_run": "0"}, page=PAGE).status_code == 302
        page = c.get(PAGE).get_data(as_text=True)
        assert "members created: 1" in page and "trainings granted: 1" in page
        assert "training 2 (Wood) is not mapped" in page
        actions.post("/lang", {"lang": "fr"}, page=PAGE)
        page = c.get(PAGE).get_data(as_text=True)
        assert "membres créés : 1" in page and "la formation 2 (Wood) n’est pas associée" in page
        fake.token = "rotated"
        actions.post(PAGE + "/run", {"dry_run": "1"}, page=PAGE)
        page = c.get(PAGE).get_data(as_text=True)
        assert "arrêtée, rien n’a été appliqué" in page and "refused the API key" in page
