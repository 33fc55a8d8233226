"""`/api/v1/integrations/fabmanager`: the Fab-manager connector's settings (contract
section 6). Admin only: the mapping reaches every site, and the key opens the lab's
Fab-manager. The token is stored and never shown back.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify

from server.api import bp
from server.api.support import actor, json_body, require_admin
from server.app import get_db
from server.services import fabmanager

FIELDS = ("url", "token", "site", "trainings", "machines")


@bp.put("/integrations/fabmanager")
def put_fabmanager() -> Any:
    require_admin()
    body = json_body(FIELDS)
    db = get_db()
    cfg = fabmanager.save_config(db, body, actor=actor())
    db.commit()
    return jsonify(fabmanager.config_json(cfg))


@bp.get("/integrations/fabmanager")
def get_fabmanager() -> Any:
    require_admin()
    db = get_db()
    out = fabmanager.config_json(fabmanager.get_config(db))
    runs = fabmanager.last_runs(db, 1)
    out["last_run"] = fabmanager.run_json(runs[0]) if runs else None
    return jsonify(out)
