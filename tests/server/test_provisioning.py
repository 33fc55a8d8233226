"""Provisioning rules and the commands around it (SQLite and PostgreSQL)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from firmware_config.mosquitto import render_acl, verify_password
from firmware_config.provisioning import ProvisioningError
from server.services.provisioning import (
    broker_files,
    provision,
    render_broker_files,
    render_node_config,
    revoke_node,
    rotate_credentials,
    server_credentials,
)


@pytest.fixture(scope="module")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from server.db import upgrade

    path = tmp_path_factory.mktemp("db") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture()
def db(migrated_sqlite: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """SQLite, from a migrated template (fast); `pg_db` runs the same set-up on PostgreSQL."""
    shutil.copy(migrated_sqlite, tmp_path / "fabpass.db")
    yield from _database(f"sqlite:///{tmp_path}/fabpass.db", monkeypatch, tmp_path,
                         migrate=False)


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres)])
def pg_db(pg_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    yield from _database(pg_url, monkeypatch, tmp_path, migrate=True)


def _database(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *,
              migrate: bool) -> Iterator[Any]:
    from server import services
    from server.db import make_engine, make_sessionmaker, upgrade

    monkeypatch.setenv("FABPASS_DATABASE_URL", db_url)
    monkeypatch.setenv("FABPASS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FABPASS_MQTT_URL", "mqtt://127.0.0.1:1883")
    for name in ("FABPASS_TOPIC_ROOT", "FABPASS_NODE_MQTT_URL"):
        monkeypatch.delenv(name, raising=False)
    if migrate:
        upgrade(db_url)
    engine = make_engine(db_url)
    session = make_sessionmaker(engine)()
    services.create_site(session, "lab", "Lab", actor="test")
    services.create_site(session, "annex", "Annex", actor="test")
    services.create_machine(session, "laser", "Laser", "lab", actor="test")
    services.create_machine(session, "printer", "Printer", "lab", actor="test")
    session.commit()
    yield session
    session.close()
    engine.dispose()


def test_provision_creates_binds_and_hashes(db: Any) -> None:
    from server.models import Machine, Node

    result = provision(db, "laser-1", "laser")
    db.commit()
    node = db.scalar(select(Node).where(Node.slug == "laser-1"))
    machine = db.scalar(select(Machine).where(Machine.slug == "laser"))
    assert result.created and machine.node_id == node.id
    assert node.mqtt_username == "laser-1" and result.password is not None
    assert verify_password(node.mqtt_password_hash, result.password)
    assert result.password not in node.mqtt_password_hash


def test_machine_must_exist_unless_site_given(db: Any) -> None:
    with pytest.raises(ProvisioningError, match="machine 'cnc' does not exist.*--site"):
        provision(db, "cnc-1", "cnc")
    with pytest.raises(ProvisioningError, match="site 'nowhere' does not exist"):
        provision(db, "cnc-1", "cnc", site_slug="nowhere")
    with pytest.raises(ProvisioningError, match="cannot create machine 'Bad Slug'"):
        provision(db, "cnc-1", "Bad Slug", site_slug="annex")
    result = provision(db, "cnc-1", "cnc", site_slug="annex")
    assert result.site == "annex" and result.machine == "cnc"
    with pytest.raises(ProvisioningError, match="on site 'lab', not 'annex'"):
        provision(db, "laser-1", "laser", site_slug="annex")


def test_one_node_drives_one_machine(db: Any) -> None:
    provision(db, "laser-1", "laser")
    with pytest.raises(ProvisioningError, match="already driven by node 'laser-1'"):
        provision(db, "other", "laser")
    with pytest.raises(ProvisioningError, match="node 'laser-1' already drives machine 'laser'"):
        provision(db, "laser-1", "printer")


def test_bad_names(db: Any) -> None:
    with pytest.raises(ProvisioningError, match="not a slug"):
        provision(db, "Laser 1", "laser")
    with pytest.raises(ProvisioningError, match="unknown preset 'nope'"):
        provision(db, "laser-1", "laser", preset="nope")


def test_revoked_node_gets_new_credentials_when_provisioned_again(db: Any) -> None:
    first = provision(db, "laser-1", "laser")
    assert revoke_node(db, "laser-1") is True
    again = provision(db, "laser-1", "laser")
    assert again.password is not None and again.password != first.password
    with pytest.raises(ProvisioningError, match="does not exist"):
        revoke_node(db, "ghost")


def test_rotate_credentials_for_the_web_ui(db: Any) -> None:
    from server.models import Node

    first = provision(db, "laser-1", "laser")
    rotated = rotate_credentials(db, "laser-1")
    node = db.scalar(select(Node).where(Node.slug == "laser-1"))
    assert rotated.password not in (None, first.password)
    assert verify_password(node.mqtt_password_hash, rotated.password)
    assert f'password = "{rotated.password}"' in rotated.config
    with pytest.raises(ProvisioningError, match="does not exist"):
        rotate_credentials(db, "ghost")


def test_config_uses_node_broker_url_and_topic_root(db: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FABPASS_MQTT_URL", "mqtt://srv:pw@127.0.0.1:1883")
    monkeypatch.setenv("FABPASS_TOPIC_ROOT", "lab42")
    result = provision(db, "laser-1", "laser")
    assert 'url = "mqtt://127.0.0.1:1883"' in result.config and "pw@" not in result.config
    assert 'topic_root = "lab42"' in result.config
    monkeypatch.setenv("FABPASS_NODE_MQTT_URL", "mqtts://broker.example.org:8883")
    text = render_node_config(db, "laser-1")
    assert 'url = "mqtts://broker.example.org:8883"' in text
    assert "password = " not in text and "FABPASS_MQTT_PASSWORD" in text


def test_provision_and_broker_files_on_postgresql(pg_db: Any) -> None:
    first = provision(pg_db, "laser-1", "laser")
    files, new = broker_files(pg_db)
    pg_db.commit()
    assert first.password is not None and new is not None
    again = provision(pg_db, "laser-1", "laser")
    assert again.password is None and broker_files(pg_db) == (files, None)
    assert "user laser-1\ntopic write fabpass/v1/lab/laser-1/status" in files["acl"]


def test_server_credentials_from_url_are_stable(db: Any) -> None:
    user, stored, new = server_credentials(db, "mqtt://srv:secret@127.0.0.1:1883")
    assert (user, new) == ("srv", None) and verify_password(stored, "secret")
    assert server_credentials(db, "mqtt://srv:secret@127.0.0.1:1883")[1] == stored
    changed = server_credentials(db, "mqtt://srv:other@127.0.0.1:1883")[1]
    assert changed != stored and verify_password(changed, "other")


def test_server_password_generated_once_and_never_by_a_download(db: Any) -> None:
    with pytest.raises(ProvisioningError, match="no MQTT credentials yet"):
        render_broker_files(db)
    files, new = broker_files(db)
    assert new is not None and files["passwd"].startswith("fabpass-server:$7$101$")
    again, none = broker_files(db)
    assert none is None and again == files
    assert render_broker_files(db) == files


def test_acl_with_custom_root() -> None:
    text = render_acl("srv", [], "lab42")
    assert "topic read lab42/v1/+/+/event" in text and "fabpass/" not in text
    assert text.index("user srv") < text.index("\ntopic ")  # nothing granted to anonymous


def test_cli_provision_broker_revoke(db: Any, tmp_path: Path) -> None:
    from fabpass.cli import main

    runner = CliRunner()
    out = tmp_path / "laser-1.toml"
    first = runner.invoke(main, ["node", "provision", "laser-1", "--machine", "laser",
                                 "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert "New MQTT password for laser-1" in first.output
    assert out.stat().st_mode & 0o077 == 0 and 'password = "' in out.read_text()
    second = runner.invoke(main, ["node", "provision", "laser-1", "--machine", "laser"])
    assert second.exit_code == 0 and "credentials unchanged" in second.output
    assert 'node_id = "laser-1"' in second.output and 'password = "' not in second.output
    bad = runner.invoke(main, ["node", "provision", "x", "--machine", "nope"])
    assert bad.exit_code == 1 and "machine 'nope' does not exist" in bad.output

    broker_dir = tmp_path / "broker"
    made = runner.invoke(main, ["broker", "config", "--out", str(broker_dir)])
    assert made.exit_code == 0, made.output
    assert "FABPASS_MQTT_URL=mqtt://fabpass-server:" in made.output
    assert "laser-1:" in (broker_dir / "passwd").read_text()
    same = runner.invoke(main, ["broker", "config", "--out", str(broker_dir)])
    assert same.output.count(": unchanged") == 3 and "FABPASS_MQTT_URL" not in same.output

    revoked = runner.invoke(main, ["node", "revoke", "laser-1"])
    assert revoked.exit_code == 0 and "laser-1: revoked" in revoked.output
    runner.invoke(main, ["broker", "config", "--out", str(broker_dir)])
    assert "laser-1" not in (broker_dir / "passwd").read_text()
    assert "laser-1" not in (broker_dir / "acl").read_text()


def test_cli_refuses_unmigrated_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fabpass.cli import main

    monkeypatch.setenv("FABPASS_DATABASE_URL", f"sqlite:///{tmp_path}/empty.db")
    result = CliRunner().invoke(main, ["broker", "config", "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and "fabpass db upgrade" in result.output
