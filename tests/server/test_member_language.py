"""Mails to members are in the member's language: the login's, else the server default, else
French (issue 20). Delivered through a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from server import services as s
from server.db import make_sessionmaker
from server.models import Member, utcnow
from server.services import languages, mail, notices

_spec = importlib.util.spec_from_file_location(
    "fabpass_smtp_receiver", Path(__file__).parents[1] / "smtp_receiver.py")
assert _spec is not None and _spec.loader is not None
smtp_receiver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(smtp_receiver)


@pytest.fixture()
def receiver():  # type: ignore[no-untyped-def]
    r = smtp_receiver.SmtpReceiver().start()
    yield r
    r.stop()


def _when_free_mail(db: Session, engine: Engine, receiver, member: Member,  # type: ignore[no-untyped-def]
                    machine_id: int):
    notices.watch(db, member.id, machine_id, actor="test")
    db.commit()
    assert notices.machine_freed(db, machine_id, public_url="http://fab.test") == 1
    db.commit()
    cfg = mail.parse_smtp_url(receiver.url)
    assert mail.send_due(make_sessionmaker(engine), cfg, "fab@example.org").sent == 1
    (msg,) = receiver.wait_for(1)
    return msg


def test_a_member_without_a_login_gets_french(db: Session, engine: Engine, lab, receiver,  # type: ignore[no-untyped-def]
                                              monkeypatch) -> None:
    monkeypatch.delenv("FABPASS_DEFAULT_LANGUAGE", raising=False)
    msg = _when_free_mail(db, engine, receiver, lab["alice"], lab["laser"].id)
    assert msg["To"] == "alice@example.org"
    assert msg["Subject"] == "fabpass : Laser est libre"
    body = smtp_receiver.text_of(msg)
    assert "Bonjour Alice Dupont" in body and "http://fab.test/machines/" in body


def test_the_login_language_wins(db: Session, engine: Engine, lab, receiver,  # type: ignore[no-untyped-def]
                                 monkeypatch) -> None:
    monkeypatch.setenv("FABPASS_DEFAULT_LANGUAGE", "fr")
    user = s.create_user(db, "alice.login@example.org", "a-long-password-1", "trainer",
                         member_id=lab["alice"].id, actor="cli")
    s.remember_language(db, user.id, "en")
    db.commit()
    msg = _when_free_mail(db, engine, receiver, lab["alice"], lab["laser"].id)
    assert msg["Subject"] == "fabpass: Laser is free"
    assert "Hello Alice Dupont" in smtp_receiver.text_of(msg)


def test_the_server_default_when_no_login_language(db: Session, lab,  # type: ignore[no-untyped-def]
                                                   monkeypatch) -> None:
    monkeypatch.setenv("FABPASS_DEFAULT_LANGUAGE", "en")
    assert languages.member_language(db, lab["alice"].id) == "en"
    monkeypatch.setenv("FABPASS_DEFAULT_LANGUAGE", "klingon")
    assert languages.member_language(db, lab["alice"].id) == "fr"
    monkeypatch.delenv("FABPASS_DEFAULT_LANGUAGE")
    assert languages.member_language(db, lab["alice"].id) == "fr"


def test_training_expiry_notice_in_french(db: Session, engine: Engine, lab, receiver,  # type: ignore[no-untyped-def]
                                          monkeypatch) -> None:
    monkeypatch.delenv("FABPASS_DEFAULT_LANGUAGE", raising=False)
    now = utcnow()
    s.grant(db, lab["alice"].id, machine_id=lab["laser"].id, expires_at=now + timedelta(days=5),
            actor="cli")
    notices.set_optins(db, lab["alice"].id, ["training_expiring"], actor="test")
    db.commit()
    assert notices.training_expiry_notices(db, now) == 1
    cfg = mail.parse_smtp_url(receiver.url)
    assert mail.send_due(make_sessionmaker(engine), cfg, "fab@example.org").sent == 1
    (msg,) = receiver.wait_for(1)
    assert msg["Subject"].startswith("fabpass : votre formation Laser expire le")
