"""The ingest's dead-letter and error log lines never hold a raw badge UID (issue 13, item 8):
they print its `log_ref` instead, whatever the spelling, whether the UID is quoted by a
validation error or by a handler's exception."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from ingest_live import GOOD, SITE, event, setup_lab
from sqlalchemy.orm import Session

from protocol import Topics
from server.db import make_sessionmaker
from server.messaging import handlers
from server.messaging.ingest import Incoming, Ingest
from server.services.personal import canonical_uid, log_ref, redact_uids

UID = "04A1B2C3D4E5F6"
SPELLINGS = ["04a1b2c3d4e5f6", "04:A1:B2:C3:D4:E5:F6", "04-a1-b2-c3-d4-e5-f6", UID + "ZZ"]


@pytest.fixture()
def ingest(db: Session) -> Ingest:
    setup_lab(db, GOOD)
    return Ingest(make_sessionmaker(db.get_bind()), Topics())  # type: ignore[arg-type]


def _send(ingest: Ingest, *payloads: bytes) -> None:
    now = datetime.now(UTC)
    ingest.handle_batch([Incoming(f"fabpass/v1/{SITE}/{GOOD}/event", p, i, 1, now)
                         for i, p in enumerate(payloads)])


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= 30]


def _assert_no_uid(lines: list[str]) -> None:
    assert lines
    for line in lines:
        # compare without separators or case: no spelling of the UID survives
        assert UID not in canonical_uid(line), line
        assert "uid#" in line, line


def test_rejected_uid_is_logged_as_a_ref(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    _send(ingest, *(json.dumps(event("badge.denied", {"uid": u, "reason": "unknown_badge"}))
                    .encode() for u in SPELLINGS))
    lines = [m for m in _warnings(caplog) if "dead letter" in m]
    assert len(lines) == len(SPELLINGS)
    _assert_no_uid(lines)
    assert log_ref(UID) in lines[0]  # the ref is the one the rest of the server logs


def test_handler_exception_quoting_a_uid_is_redacted(ingest: Ingest, monkeypatch: Any,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    def boom(*_a: Any, **_k: Any) -> Any:
        raise KeyError(f"no badge {SPELLINGS[1]}")

    monkeypatch.setitem(handlers.HANDLERS, "badge.denied", boom)
    caplog.set_level("INFO")
    _send(ingest, json.dumps(event("badge.denied", {"uid": UID, "reason": "unknown_badge"}))
          .encode())
    _assert_no_uid(_warnings(caplog))


def test_redaction_keeps_event_ids_dates_and_slugs() -> None:
    text = ("event 123e4567-e89b-12d3-a456-426614174000 on fabpass/v1/lab/laser-1/event at "
            "2026-12-03T10:00:00.000Z: duration_s 604800.0")
    assert redact_uids(text) == text
    assert re.fullmatch(r"uid uid#[0-9a-f]{8}", redact_uids("uid 04 a1 b2 c3"))
