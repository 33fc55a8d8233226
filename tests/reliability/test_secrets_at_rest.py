"""Promise 7 (the part tests/web does not cover): web passwords, API tokens and MQTT passwords
are never stored in clear — checked by scanning every column of every table and the session
cookie after creating them through the real commands, and proving the stored hashes work.

Role matrix, CSRF, login rate limit, cookie flags and "no default account" are tested in
tests/web (test_access.py, test_security.py) and tests/api; schemathesis in tests/api.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import Base

PASSWORD = "Correct-Horse-Battery-42"


def _everything(db: Session) -> str:
    parts = []
    for table in Base.metadata.sorted_tables:
        for row in db.execute(select(table)).mappings():
            for value in row.values():
                parts.append(value.decode("utf-8", "replace") if isinstance(value, bytes)
                             else json.dumps(value, default=str))
    return "\n".join(parts)


def test_no_secret_is_stored_in_clear(db: Session, db_url: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from fabpass.cli import main
    from firmware_config.mosquitto import verify_password as mosquitto_verify
    from server import services as s
    from server.app import create_app
    from server.models import ApiToken, Node, User
    from server.security import verify_password
    from server.services.provisioning import broker_files, provision

    monkeypatch.setenv("FABPASS_DATABASE_URL", db_url)
    monkeypatch.setenv("FABPASS_MQTT_URL", "mqtt://127.0.0.1:1883")
    s.create_site(db, "lab", "The Lab", actor="cli")
    s.create_machine(db, "laser-1", "Laser", "lab", "laser_cutter", actor="cli")
    db.commit()
    runner = CliRunner()
    out = runner.invoke(main, ["user", "create", "--email", "boss@example.org", "--role",
                               "admin", "--password-stdin"], input=PASSWORD + "\n")
    assert out.exit_code == 0, out.output
    out = runner.invoke(main, ["token", "create", "--name", "erp"])
    assert out.exit_code == 0, out.output
    token = out.output.strip().splitlines()[-1]
    assert len(token) >= 32
    node = provision(db, "laser-1", "laser-1", site_slug="lab")
    files, server_password = broker_files(db, install_dir=str(tmp_path))
    db.commit()
    assert node.password and server_password
    secrets = {"web password": PASSWORD, "API token": token, "node MQTT password": node.password,
               "server MQTT password": server_password}

    db.expire_all()
    stored = _everything(db)
    leaks = [name for name, secret in secrets.items() if secret in stored]
    assert leaks == []
    for name in ("passwd", "acl", "mosquitto.conf"):
        assert not any(secret in files[name] for secret in secrets.values()), name

    # The hashes are real: each secret verifies against what was stored.
    user = db.scalar(select(User).where(User.email == "boss@example.org"))
    assert user is not None and verify_password(user.password_hash, PASSWORD)
    assert not verify_password(user.password_hash, PASSWORD + "x")
    row = db.scalar(select(Node).where(Node.slug == "laser-1"))
    assert row is not None and row.mqtt_password_hash
    assert mosquitto_verify(row.mqtt_password_hash, node.password)
    assert db.scalar(select(ApiToken.prefix)) == token[:12]  # only a display prefix is kept

    app = create_app({"TESTING": True, "DATABASE_URL": db_url})
    try:
        client = app.test_client()
        ok = client.get("/api/v1/members", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        bad = client.get("/api/v1/members", headers={"Authorization": f"Bearer {token}x"})
        assert bad.status_code == 401
        page = client.get("/login")
        cookies: Any = page.headers.getlist("Set-Cookie")
        assert not any(PASSWORD in c or token in c for c in cookies)
    finally:
        app.extensions["fabpass.engine"].dispose()
