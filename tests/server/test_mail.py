"""The mail queue delivers to a real SMTP server: headers, both parts, bounces, outages."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from server.db import make_sessionmaker
from server.models import OutgoingMail, utcnow
from server.services import mail, mail_templates

_spec = importlib.util.spec_from_file_location(
    "fabpass_smtp_receiver", Path(__file__).parents[1] / "smtp_receiver.py")
assert _spec is not None and _spec.loader is not None
smtp_receiver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(smtp_receiver)


@pytest.fixture()
def smtp() -> Iterator[object]:
    receiver = smtp_receiver.SmtpReceiver().start()
    yield receiver
    receiver.stop()


def test_a_queued_mail_arrives_with_safe_headers_and_both_parts(engine: Engine, smtp) -> None:
    sessions = make_sessionmaker(engine)
    subject, text, html = mail_templates.render(
        "password_reset", "fr", email="a@example.org", minutes=60,
        link="https://fab.example/password/reset/abc")
    with sessions() as db:
        mail.enqueue(db, "a@example.org", subject + "\r\nBcc: evil@example.org", text, html)
        db.commit()
    result = mail.send_due(sessions, mail.parse_smtp_url(smtp.url), "Fab\nLab <fab@example.org>")
    assert result.sent == 1
    (msg,) = smtp.wait_for(1)
    assert msg["To"] == "a@example.org"
    assert msg["Bcc"] is None  # the CR/LF became a space, not a header
    assert msg["Subject"].startswith("fabpass : réinitialiser")
    assert "Bcc: evil" in msg["Subject"]
    assert "\n" not in msg["From"] and "fab@example.org" in msg["From"]
    assert "https://fab.example/password/reset/abc" in smtp_receiver.text_of(msg)
    assert '<a href="https://fab.example/password/reset/abc">' in smtp_receiver.html_of(msg)
    # sent once: a second round sends nothing
    assert mail.send_due(sessions, mail.parse_smtp_url(smtp.url), "fab@example.org").sent == 0
    assert len(smtp.messages) == 1


def test_a_permanent_refusal_bounces_and_is_not_retried(engine: Engine, smtp) -> None:
    sessions = make_sessionmaker(engine)
    smtp.handler.reject.add("gone@example.org")
    with sessions() as db:
        mail.enqueue(db, "gone@example.org", "s", "t")
        mail.enqueue(db, "ok@example.org", "s", "t")
        db.commit()
    cfg = mail.parse_smtp_url(smtp.url)
    result = mail.send_due(sessions, cfg, "fab@example.org")
    assert (result.sent, result.bounced) == (1, 1)
    later = utcnow() + timedelta(days=2)
    assert mail.send_due(sessions, cfg, "fab@example.org", now=lambda: later).sent == 0
    with sessions() as db:
        rows = {r.to_addr: r for r in db.scalars(select(OutgoingMail))}
        assert rows["gone@example.org"].status == "bounced"
        assert rows["gone@example.org"].attempts == 1
        assert mail.bounced_addresses(db) == {"gone@example.org"}
    assert [m["To"] for m in smtp.messages] == ["ok@example.org"]


def test_server_down_then_up_delivers_everything_once(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    port = smtp_receiver.free_port()
    cfg = mail.parse_smtp_url(f"smtp://127.0.0.1:{port}")
    with sessions() as db:
        for i in range(5):
            mail.enqueue(db, f"m{i}@example.org", f"mail {i}", "body")
        db.commit()
    t0 = utcnow()
    down = mail.send_due(sessions, cfg, "fab@example.org", now=lambda: t0)
    assert (down.sent, down.deferred) == (0, 5)
    # not due yet: the backoff holds them
    assert mail.send_due(sessions, cfg, "fab@example.org", now=lambda: t0).deferred == 0
    receiver = smtp_receiver.SmtpReceiver(port).start()
    try:
        t1 = t0 + timedelta(minutes=5)
        up = mail.send_due(sessions, cfg, "fab@example.org", now=lambda: t1)
        assert up.sent == 5
        assert mail.send_due(sessions, cfg, "fab@example.org",
                             now=lambda: t1 + timedelta(hours=1)).sent == 0
        assert sorted(m["Subject"] for m in receiver.wait_for(5)) == [f"mail {i}" for i in range(5)]
        assert len(receiver.messages) == 5
    finally:
        receiver.stop()


def test_temporary_failures_give_up_after_max_attempts(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    cfg = mail.parse_smtp_url(f"smtp://127.0.0.1:{smtp_receiver.free_port()}")
    with sessions() as db:
        mail.enqueue(db, "x@example.org", "s", "t")
        db.commit()
    t = utcnow()
    for _ in range(mail.MAX_ATTEMPTS + 3):
        t += mail.BACKOFF_MAX_S * timedelta(seconds=1)
        mail.send_due(sessions, cfg, "fab@example.org", now=lambda t=t: t)
    with sessions() as db:
        row = db.scalars(select(OutgoingMail)).one()
        assert (row.status, row.attempts) == ("failed", mail.MAX_ATTEMPTS)


def test_smtp_urls_and_addresses() -> None:
    cfg = mail.parse_smtp_url("smtps://u%40x:p%3Aw@mail.example:2465")
    assert (cfg.host, cfg.port, cfg.user, cfg.password, cfg.tls) == (
        "mail.example", 2465, "u@x", "p:w", True)
    assert mail.parse_smtp_url("smtp://h:587?starttls=1").starttls
    with pytest.raises(mail.MailConfigError, match="FABPASS_SMTP_URL"):
        mail.parse_smtp_url("http://h")
    for bad in ("a@b\r\nBcc: c@d", "x", "a@b, c@d", "Name <a@b>"):
        with pytest.raises(ValueError):
            mail.check_address(bad)
