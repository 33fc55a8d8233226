"""The server's commands through click's CliRunner, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.cli import db as db_cli
from server.cli import members as members_cli
from server.cli import trainings as trainings_cli
from server.cli import users as users_cli
from server.models import ApiToken, Authorization, Badge, Member, User
from server.security import hash_token, verify_password

HERE = Path(__file__).parent


@pytest.fixture()
def runner(db_url: str, engine) -> CliRunner:  # type: ignore[no-untyped-def]
    return CliRunner(env={"FABPASS_DATABASE_URL": db_url, "FABPASS_SECRET_KEY": "x"})


def test_db_upgrade_then_user_and_token(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/new.db"
    r = CliRunner(env={"FABPASS_DATABASE_URL": url})
    result = r.invoke(users_cli.user, ["create", "--email", "a@example.org", "--role", "admin",
                                 "--password-stdin"], input="long enough\n")
    assert result.exit_code != 0 and "fabpass db upgrade" in result.output
    assert r.invoke(db_cli.db, ["upgrade"]).exit_code == 0
    result = r.invoke(users_cli.user, ["create", "--email", "a@example.org", "--role", "admin",
                                 "--password-stdin"], input="long enough\n")
    assert result.exit_code == 0, result.output
    result = r.invoke(users_cli.user, ["create", "--email", "a@example.org", "--role", "admin",
                                 "--password-stdin"], input="long enough\n")
    assert result.exit_code == 1 and "exists" in result.output


def test_user_create_manager_with_sites(runner: CliRunner, db: Session, lab) -> None:  # type: ignore[no-untyped-def]
    """`fabpass user create --role manager --site SLUG` (repeatable) gives the login its sites
    (contract section 6), like `fabpass token create`."""
    from server import services

    services.create_site(db, "nord", "Atelier Nord", "Europe/Paris", actor="test")
    db.commit()
    args = ["create", "--email", "m2@example.org", "--role", "manager", "--password-stdin"]
    result = runner.invoke(users_cli.user, [*args, "--site", "lab", "--site", "nord"],
                           input="secret password\n")
    assert result.exit_code == 0, result.output
    db.rollback()
    user = db.scalar(select(User).where(User.email == "m2@example.org"))
    assert user is not None and sorted(s.slug for s in user.sites) == ["lab", "nord"]
    # --site only for managers; an unknown site is a message, nothing created
    result = runner.invoke(users_cli.user, ["create", "--email", "a2@example.org", "--role",
                                            "admin", "--password-stdin", "--site", "lab"],
                           input="secret password\n")
    assert result.exit_code == 2 and "--role manager" in result.output
    result = runner.invoke(users_cli.user, [*args[:2], "m3@example.org", *args[3:],
                                            "--site", "nowhere"], input="secret password\n")
    assert result.exit_code == 1 and "nowhere" in result.output
    db.rollback()
    assert db.scalar(select(func.count()).select_from(User).where(
        User.email.in_(["a2@example.org", "m3@example.org"]))) == 0


def test_user_prompt_and_token(runner: CliRunner, db: Session, lab, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    answers = iter(["secret password", "secret password"])
    monkeypatch.setattr(users_cli.getpass, "getpass", lambda prompt="": next(answers))
    result = runner.invoke(users_cli.user, ["create", "--email", "m@example.org", "--role", "manager"])
    assert result.exit_code == 0, result.output
    user = db.scalar(select(User).where(User.email == "m@example.org"))
    assert user is not None and verify_password(user.password_hash, "secret password")
    result = runner.invoke(users_cli.token, ["create", "--name", "erp", "--role", "manager",
                                       "--site", "lab"])
    assert result.exit_code == 0
    token = result.stdout.strip()
    assert token.startswith("fp_") and "\n" not in token
    db.rollback()
    row = db.scalar(select(ApiToken))
    assert row is not None and row.token_hash == hash_token(token) and row.role.value == "manager"


def test_grant_and_revoke(runner: CliRunner, db: Session, lab) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(trainings_cli.grant, ["--member", "alice@example.org", "--machine", "laser-1",
                                       "--role", "trainer", "--expires", "2099-12-31"])
    assert result.exit_code == 0, result.output
    auth_id = int(result.output.strip().splitlines()[-1])
    db.rollback()
    auth = db.get(Authorization, auth_id)
    assert auth is not None and auth.role.value == "trainer" and auth.granted_via == "cli"
    again = runner.invoke(trainings_cli.grant, ["--member", str(lab["alice"].id), "--machine", "laser-1",
                                      "--role", "trainer"])
    assert again.exit_code == 1 and "already" in again.output
    assert runner.invoke(trainings_cli.grant, ["--member", "nobody@x.org", "--group", "lasers"]
                         ).exit_code == 1
    assert runner.invoke(trainings_cli.grant, ["--member", "1"]).exit_code == 2
    result = runner.invoke(trainings_cli.revoke, [str(auth_id), "--reason", "left"])
    assert result.exit_code == 0, result.output
    db.rollback()
    assert db.get(Authorization, auth_id).revoke_reason == "left"
    assert runner.invoke(trainings_cli.revoke, ["9999"]).exit_code == 1


def test_import_errors_name_rows_and_import_nothing(runner: CliRunner, db: Session, lab,  # type: ignore[no-untyped-def]
                                                    tmp_path: Path) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("name,email,member_no,badge_uid,tags,active_until\n"
                   "Bob Martin,bob@example.org,B1,04:B0:B0:B0,youth;evening,2027-06-30\n"
                   "Carol,not-an-email,C1,,,\n"
                   "Dan,dan@example.org,D1,04A1B2C3,,\n"          # Alice's badge
                   "Eve,eve@example.org,E1,,,31/02/2027\n", encoding="utf-8")
    result = runner.invoke(members_cli.members, ["import", str(csv)])
    assert result.exit_code == 1
    assert "line 3:" in result.output and "email" in result.output
    assert "line 4:" in result.output and "another member" in result.output
    assert "line 5:" in result.output and "line 2:" not in result.output
    assert "nothing imported" in result.output
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Member)) == 1  # only Alice


def test_import_helloasso_export(runner: CliRunner, db: Session, lab,  # type: ignore[no-untyped-def]
                                 tmp_path: Path) -> None:
    data = ("\ufeffNuméro;Formule;Nom;Prénom;Email;Numéro d'adhérent;Date de fin de validité\n"
            "1;Adhésion jeune;Durand;Léa;lea@example.org;H-100;31/08/2027\n"
            "2;Adhésion;Dupont;Alice;ALICE@example.org;H-101;31/08/2027\n")
    export = tmp_path / "export.csv"
    export.write_bytes(data.encode("utf-8"))
    dry = runner.invoke(members_cli.members, ["import", str(export), "--mapping", "helloasso",
                                      "--site", "lab", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Member)) == 1
    result = runner.invoke(members_cli.members, ["import", str(export), "--mapping", "helloasso",
                                         "--site", "lab"])
    assert result.exit_code == 0, result.output
    assert "1 created, 1 updated" in result.output
    db.rollback()
    lea = db.scalar(select(Member).where(Member.email == "lea@example.org"))
    assert lea is not None and lea.name == "Léa Durand" and lea.member_no == "H-100"
    assert lea.tags == ["Adhésion jeune"] and str(lea.active_until) == "2027-08-31"
    alice = db.get(Member, lab["alice"].id)
    assert alice.member_no == "H-101" and str(alice.active_until) == "2027-08-31"


def test_import_with_toml_mapping_enrols_badges(runner: CliRunner, db: Session, lab,  # type: ignore[no-untyped-def]
                                                tmp_path: Path) -> None:
    (tmp_path / "map.toml").write_text('delimiter = "|"\n[columns]\n"Full name" = "name"\n'
                                       '"Card" = "badge_uid"\n')
    (tmp_path / "m.csv").write_text("Full name|Card\nZoe Q|04 0A 0B 0C\n")
    result = runner.invoke(members_cli.members, ["import", str(tmp_path / "m.csv"), "--mapping",
                                         str(tmp_path / "map.toml")])
    assert result.exit_code == 0, result.output
    db.rollback()
    assert db.scalar(select(Badge.uid).join(Member).where(Member.name == "Zoe Q")) == "040A0B0C"


def _server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FABPASS_")}
    env.update(FABPASS_DATA_DIR=str(tmp_path), FABPASS_MQTT_URL="mqtt://127.0.0.1:1")
    env.update(extra)
    return env


LAUNCH = "import logging, sys; logging.basicConfig(level=logging.INFO); " \
         "from server.cli.run import server; sys.exit(server())"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_server_refuses_unmigrated_db_and_missing_secret(tmp_path: Path, db_url: str) -> None:
    cmd = [sys.executable, "-c", LAUNCH, "--port", "0"]
    root = HERE.parents[1]
    out = subprocess.run(cmd, env=_server_env(tmp_path), cwd=root, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and "FABPASS_SECRET_KEY" in out.stderr
    out = subprocess.run(cmd, env=_server_env(tmp_path, FABPASS_SECRET_KEY="k"), cwd=root,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "fabpass db upgrade" in out.stderr


@pytest.mark.broker
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_server_serves_publishes_and_stops_on_sigterm(tmp_path: Path, mosquitto, lab,  # type: ignore[no-untyped-def]
                                                      db_url: str) -> None:
    import socket
    import urllib.request

    from fabpass.broker import free_port

    port = free_port()
    env = _server_env(tmp_path, FABPASS_SECRET_KEY="k", FABPASS_DATABASE_URL=db_url,
                      FABPASS_MQTT_URL=mosquitto.url,
                      FABPASS_MQTT_CLIENT_ID=f"srv-{port}")
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH, "--port", str(port)], env=env,
                            cwd=HERE.parents[1], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as resp:
            assert resp.status in (200, 302, 404)
    except urllib.error.HTTPError as exc:  # the web UI may not exist yet: the server answers
        assert exc.code < 500
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(15)
        finally:
            if proc.poll() is None:
                proc.kill()
    err = proc.stderr.read() if proc.stderr else ""
    assert rc == 0, err[-2000:]
    assert "fabpass server stopped" in err


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_server_ingest_can_join_the_shared_subscription(tmp_path: Path, fresh_broker, lab,  # type: ignore[no-untyped-def]
                                                        db_url: str) -> None:
    """`fabpass server --ingest-shared`: its ingest is one of the shared workers (the sharing
    itself is tested with ServerCore in test_mqtt_e2e). A broker of its own: the stopped
    server's persistent session would otherwise keep taking a share of the group's events
    on the session broker, away from other tests' workers."""
    mosquitto = fresh_broker
    from fabpass.broker import free_port

    port = free_port()
    env = _server_env(tmp_path, FABPASS_SECRET_KEY="k", FABPASS_DATABASE_URL=db_url,
                      FABPASS_MQTT_URL=mosquitto.url, FABPASS_MQTT_CLIENT_ID=f"srv-{port}")
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH, "--port", str(port), "--ingest-shared"],
                            env=env, cwd=HERE.parents[1], stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "MQTT core started" in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        finally:
            if proc.poll() is None:
                proc.kill()
    started = [ln for ln in lines if "MQTT core started" in ln]
    assert started and "shared=True" in started[0], "".join(lines)[-2000:]
