"""Paid use on the node: `credit_ok: false` refuses `no_credit` from the cached list with no
broker at all, and a list that arrives mid-session with `credit_ok: false` never cuts it."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

from controller_testkit import ALICE, BOB, RELAY, acl_dict
from node_harness import wait_until
from test_daemon import make_cfg, start

from controller.daemon import NodeDaemon
from controller.storage import AclStore, Outbox
from protocol import Event, utcnow


def _badges(alice_ok: bool, bob_ok: bool) -> list[dict[str, Any]]:
    return [{"uid": ALICE, "member": 1, "role": "user", "until": None, "credit_ok": alice_ok},
            {"uid": BOB, "member": 2, "role": "user", "until": None, "credit_ok": bob_ok}]


def test_no_credit_offline_and_running_session_not_cut(tmp_path: Path, mock_pins: Any) -> None:
    store = tmp_path / "store"
    store.mkdir()
    issued = utcnow()
    AclStore(store).save(json.dumps(acl_dict(issued=issued, valid_s=86400,
                                             badges=_badges(False, True))).encode())
    relay = mock_pins.pin(RELAY)
    daemon = NodeDaemon(make_cfg(tmp_path), simulate=True, pin_factory=mock_pins,
                        stdin=io.StringIO(""))  # MQTT on a dead port: offline throughout
    thread, result = start(daemon)
    box = Outbox(store / "outbox.db")

    def events() -> list[Event]:
        return [Event.decode(p) for _, p in box.pending()]

    def tap(uid: str) -> None:
        daemon.reader.place(uid)
        time.sleep(0.3)  # as `tap` on the simulated reader: present, then removed
        daemon.reader.remove()
        time.sleep(0.4)  # absent long enough for the presence tracker to see it go

    try:
        tap(ALICE)
        wait_until(lambda: any(e.type == "badge.denied" for e in events()), 5, "a refusal")
        denied = [e.data for e in events() if e.type == "badge.denied"]
        assert denied == [{"uid": ALICE, "reason": "no_credit"}]
        assert not relay.state

        tap(BOB)
        wait_until(lambda: relay.state, 5, "relay on for bob")
        # bob's balance falls below the minimum while he works: the new list says so
        later = acl_dict(version=2, issued=utcnow(), valid_s=86400, badges=_badges(False, False),
                         policy={"end_on_revoke": True})
        daemon.queue.put(("mqtt", ("fabpass/v1/lab/laser-1/acl", json.dumps(later).encode(),
                                   True)))
        wait_until(lambda: daemon.machine is not None and daemon.machine.acl is not None
                   and daemon.machine.acl.version == 2, 5, "list 2 loaded")
        assert relay.state and daemon.machine is not None and daemon.machine.session is not None
        time.sleep(0.5)  # the list is in; the session runs on
        assert relay.state
        tap(BOB)  # tap out
        wait_until(lambda: not relay.state, 5, "relay off at badge out")
        tap(BOB)  # and now he may not start again
        wait_until(lambda: len([e for e in events() if e.type == "badge.denied"]) == 2, 5,
                   "bob refused")
    finally:
        daemon.queue.put(("signal", 15))
        thread.join(10)
    assert result == [0]
    types = [(e.type, e.data.get("reason")) for e in events()]
    assert types == [("badge.denied", "no_credit"), ("session.started", None),
                     ("session.ended", "badge_out"), ("badge.denied", "no_credit")]
    assert [s.state for s in relay.states] == [False, True, False]
