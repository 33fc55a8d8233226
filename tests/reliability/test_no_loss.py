"""Promise 1 — nothing lost, none doubled, under SIGKILL of the ingest, the broker (persistence
off) and a node, with sessions running on every node (CI size; tests/soak runs 20 nodes)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from reliability_chaos import run_chaos

log = logging.getLogger(__name__)


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.timeout(200)
def test_nothing_lost_none_doubled_under_kills(tmp_path: Path) -> None:
    report = run_chaos(tmp_path, n_nodes=5, sessions_per_node=5)
    log.warning("chaos figures: %s", report.summary())
    assert report.pending_in_outboxes == 0
    assert report.missing == [] and report.unexpected == []
    assert report.generated == report.stored > 0
    assert report.open_sessions == []
    assert report.power_loss >= 1
    assert report.duration_errors == []
    assert len(report.faults) == 3
