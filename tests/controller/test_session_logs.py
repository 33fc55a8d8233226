"""Node logs at INFO never carry a badge UID on the badge path (only DEBUG may)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from controller_testkit import ALICE, STRANGER, Rig

from controller.session_record import badge_tag


@pytest.fixture()
def rig(mock_pins: Any) -> Iterator[Rig]:
    r = Rig(mock_pins)
    yield r
    r.hw.close()


def _info_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records
                     if r.levelno >= logging.INFO and r.name.startswith("controller"))


def test_session_started_and_denied_log_no_uid_at_info(rig: Rig,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="controller")
    rig.tap(ALICE)  # session started
    rig.tap(STRANGER)  # denied: in use / unknown
    rig.tap(ALICE)  # session ended
    rig.tap(STRANGER)  # denied: unknown_badge
    text = _info_text(caplog)
    assert "session" in text and "started" in text and "denied" in text
    assert ALICE not in text and STRANGER not in text
    assert "member 1" in text  # the listed badge is named by its member id
    assert badge_tag(STRANGER) in text  # the unknown one by a short keyed hash
    assert badge_tag(STRANGER) != badge_tag(ALICE) and len(badge_tag(ALICE)) == 9


def test_debug_keeps_the_uid(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="controller")
    rig.tap(STRANGER)
    debug = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)
    assert STRANGER in debug
