"""Outgoing mail: a queue in the database and an SMTP sender with retries and backoff.

A web request only calls `enqueue` (one INSERT in its own transaction), so a mail server that is
down never blocks or fails a request. `send_due` (run by `server.jobs.MailSender`) delivers what
is due: a temporary failure (connection refused, 4xx) is retried with exponential backoff; a
permanent refusal of the address (5xx) marks the mail `bounced` and it is never retried; after
`MAX_ATTEMPTS` temporary failures it is `failed`. A mail is marked `sent` in the same loop as it
is handed over, so a server that comes back delivers everything once.

Headers are built with `email.message.EmailMessage` and the default policy: a CR or LF in a name
or subject is folded into a space before it gets there, so it can never start a new header.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import OutgoingMail, utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
BACKOFF_FIRST_S = 30.0
BACKOFF_MAX_S = 6 * 3600.0
BATCH = 50


class MailConfigError(ValueError):
    """FABPASS_SMTP_URL or FABPASS_MAIL_FROM is wrong; the message names the setting."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    user: str | None = None
    password: str | None = None
    tls: bool = False        # smtps:// : TLS from the first byte
    starttls: bool = False   # smtp://…?starttls=1
    timeout_s: float = 10.0


def parse_smtp_url(url: str) -> SmtpConfig:
    """`smtp://[user:pass@]host:port`, `smtps://…` for TLS, `?starttls=1` (contract section 6)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise MailConfigError(f"FABPASS_SMTP_URL: scheme must be smtp or smtps, not {parts.scheme!r}")
    if not parts.hostname:
        raise MailConfigError("FABPASS_SMTP_URL: no host")
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 25)
    except ValueError as exc:
        raise MailConfigError(f"FABPASS_SMTP_URL: bad port ({exc})") from None
    query = parse_qs(parts.query)
    starttls = query.get("starttls", ["0"])[0].lower() in ("1", "true", "yes")
    return SmtpConfig(host=parts.hostname, port=port,
                      user=unquote(parts.username) if parts.username else None,
                      password=unquote(parts.password) if parts.password else None,
                      tls=parts.scheme == "smtps", starttls=starttls)


def one_line(text: str, limit: int = 300) -> str:
    """A header-safe single line: CR, LF and other line breaks become spaces."""
    return " ".join(str(text).split())[:limit]


def check_address(addr: str) -> str:
    """The address if it is one plain mailbox (no display name, no line break), else ValueError."""
    addr = addr.strip()
    if not addr or any(c in addr for c in "\r\n<>,;\"") or addr.count("@") != 1:
        raise ValueError(f"not a mail address: {addr!r}")
    local, domain = addr.split("@")
    Address(username=local, domain=domain)  # raises on what a header cannot carry
    return addr


def enqueue(db: Session, to: str, subject: str, text: str, html: str | None = None, *,
            kind: str = "") -> OutgoingMail:
    """Queue one mail (the caller commits). Never touches the network."""
    row = OutgoingMail(to_addr=check_address(to), subject=one_line(subject), body_text=text,
                       body_html=html, kind=kind[:40], status="queued", attempts=0,
                       next_attempt_at=utcnow())
    db.add(row)
    return row


def build_message(row: OutgoingMail, mail_from: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = one_line(mail_from)
    msg["To"] = row.to_addr
    msg["Subject"] = one_line(row.subject)
    msg["Message-ID"] = make_msgid(idstring=f"fabpass-{row.id}")
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(row.body_text)
    if row.body_html:
        msg.add_alternative(row.body_html, subtype="html")
    return msg


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF_FIRST_S * 2 ** max(attempts - 1, 0), BACKOFF_MAX_S))


def _connect(cfg: SmtpConfig) -> smtplib.SMTP:
    smtp: smtplib.SMTP
    if cfg.tls:
        smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout_s,
                                context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s)
        if cfg.starttls:
            smtp.starttls(context=ssl.create_default_context())
    if cfg.user:
        smtp.login(cfg.user, cfg.password or "")
    return smtp


@dataclass
class SendResult:
    sent: int = 0
    bounced: int = 0
    deferred: int = 0
    failed: int = 0


def _defer(row: OutgoingMail, now: datetime, error: str, result: SendResult) -> None:
    row.attempts += 1
    row.last_error = error[:500]
    if row.attempts >= MAX_ATTEMPTS:
        row.status = "failed"
        result.failed += 1
        log.warning("mail %s to %s given up after %d attempts: %s", row.id, row.to_addr,
                    row.attempts, error)
    else:
        row.next_attempt_at = now + backoff(row.attempts)
        result.deferred += 1


def send_due(sessions: Callable[[], Any], cfg: SmtpConfig, mail_from: str, *,
             now: Callable[[], datetime] = utcnow, batch: int = BATCH,
             connect: Callable[[SmtpConfig], smtplib.SMTP] = _connect) -> SendResult:
    """Deliver the queued mails that are due, over one SMTP connection; commit after each."""
    result = SendResult()
    with sessions() as db:
        t = now()
        rows = list(db.scalars(select(OutgoingMail)
                               .where(OutgoingMail.status == "queued",
                                      OutgoingMail.next_attempt_at <= t)
                               .order_by(OutgoingMail.id).limit(batch)))
        if not rows:
            return result
        try:
            smtp = connect(cfg)
        except (OSError, smtplib.SMTPException) as exc:
            for row in rows:
                _defer(row, t, f"connect: {exc}", result)
            db.commit()
            log.warning("mail server %s:%s unreachable (%s); %d mails deferred", cfg.host,
                        cfg.port, exc, len(rows))
            return result
        try:
            for row in rows:
                _send_one(smtp, row, mail_from, t, result)
                db.commit()
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()
    return result


def _send_one(smtp: smtplib.SMTP, row: OutgoingMail, mail_from: str, t: datetime,
              result: SendResult) -> None:
    try:
        smtp.send_message(build_message(row, mail_from))
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _msg in exc.recipients.values()]
        if codes and all(c >= 500 for c in codes):
            _bounce(row, str(exc.recipients), result)
        else:
            _defer(row, t, str(exc.recipients), result)
    except smtplib.SMTPResponseException as exc:
        if exc.smtp_code >= 500:
            _bounce(row, f"{exc.smtp_code} {exc.smtp_error!r}", result)
        else:
            _defer(row, t, f"{exc.smtp_code} {exc.smtp_error!r}", result)
    except (OSError, smtplib.SMTPException) as exc:
        _defer(row, t, str(exc), result)
    else:
        row.status = "sent"
        row.sent_at = t
        row.attempts += 1
        result.sent += 1


def _bounce(row: OutgoingMail, error: str, result: SendResult) -> None:
    row.status = "bounced"
    row.attempts += 1
    row.last_error = error[:500]
    result.bounced += 1
    log.warning("mail %s to %s refused permanently: %s", row.id, row.to_addr, error)


def bounced_addresses(db: Session) -> set[str]:
    """Addresses that bounced: new mail to them is still queued, but the UI can show it."""
    return set(db.scalars(select(OutgoingMail.to_addr).where(OutgoingMail.status == "bounced")))
