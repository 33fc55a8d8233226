"""The status's optional `backlog` (contract section 6): events in the outbox not yet acked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from controller_testkit import ALICE, STRANGER, acl_dict
from live_daemon import LiveNode, new_node, node_cfg
from node_harness import FakeServer, wait_until

from protocol import Ack, ProtocolError, Status, utcnow

ONLINE = {"v": 1, "node": "laser-1", "online": True, "state": "idle", "relay": False,
          "warning": False, "session": None, "acl_version": 3, "clock_ok": True,
          "last_cmd": None, "software": "0.1.0", "ts": "2026-11-22T10:00:00.000Z"}


def test_status_decodes_an_optional_non_negative_backlog() -> None:
    assert Status.decode(ONLINE).backlog is None
    st = Status.decode(dict(ONLINE, backlog=12))
    assert st.backlog == 12 and Status.decode(st.encode()).backlog == 12
    for bad in (-1, 1.5, True, "3", float("nan"), 1e308):
        with pytest.raises(ProtocolError, match="backlog"):
            Status.decode(dict(ONLINE, backlog=bad))
    assert "backlog" not in Status.decode(ONLINE).to_dict()


@pytest.mark.broker
def test_status_backlog_counts_unacked_events(tmp_path: Path, mock_pins: Any,
                                              mosquitto: Any) -> None:
    node = new_node()
    server = FakeServer(mosquitto.url)
    server.auto_ack = False
    live: LiveNode | None = None
    try:
        server.publish_acl(node, acl_dict(node=node, issued=utcnow(), valid_s=86400, version=1))
        live = LiveNode(node_cfg(tmp_path / "store", node, mosquitto.url), mock_pins).start()
        server.wait_status(node, state="idle", acl_version=1, backlog=0)
        live.place(STRANGER)
        server.wait_event(node, "badge.denied", uid=STRANGER)
        live.remove()
        live.place(ALICE)
        server.wait_event(node, "session.started", uid=ALICE)
        st = server.wait_status(node, state="in_use", backlog=2)
        assert Status.decode(st).backlog == 2

        first = server.of(node)[0].id
        server.client.publish(server.topics.ack(server.site, node), Ack(ids=[first]).encode(),
                              qos=1).wait_for_publish(5)
        server.wait_status(node, backlog=1)
        rest = [e.id for e in server.of(node)[1:]]
        server.client.publish(server.topics.ack(server.site, node), Ack(ids=[], rejected=rest)
                              .encode(), qos=1).wait_for_publish(5)
        server.wait_status(node, backlog=0)
        wait_until(lambda: live.daemon.outbox is not None and live.daemon.outbox.count() == 0,
                   5, "outbox empty")
        assert live.stop() == 0
    finally:
        if live is not None:
            live.stop()
        server.clear_retained(node)
        server.close()
