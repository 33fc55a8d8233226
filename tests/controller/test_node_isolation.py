"""Per-message isolation on the node: nothing it receives can stop it gating or listening.

A real daemon on mock pins and a real Mosquitto. For each subscribed topic (acl, cmd, ack)
and each stage of the receive path — decode (JSON), validate (the protocol decoder), apply
(the state machine, the outbox) — one message is made to raise; then a good list must still
be applied and a badge must still open. Then hostile payloads over the wire, no injection.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from controller_testkit import ALICE, acl_dict
from live_daemon import LiveNode, new_node, node_cfg
from node_harness import FakeServer, wait_until

import controller.daemon
import protocol.messages
from controller.session import NodeMachine
from controller.storage import Outbox
from protocol import AccessList, Ack, Command, utcnow

pytestmark = pytest.mark.broker


class Fault:
    """Make `owner.name` raise `exc` once, on the node's decision thread only.

    A plain function in place of a module function, a method or a classmethod works for
    all three as the node calls them (`load_object(b, …)`, `machine.offer_acl(…)`,
    `AccessList.decode(b)`).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: Any, name: str,
                 exc: BaseException) -> None:
        self.fired = threading.Event()
        original = getattr(owner, name)

        def wrapper(*args: Any, **kw: Any) -> Any:
            if threading.current_thread().name == "decision" and not self.fired.is_set():
                self.fired.set()
                raise exc
            return original(*args, **kw)

        monkeypatch.setattr(owner, name, wrapper)


@pytest.fixture()
def rig(tmp_path: Path, mock_pins: Any, mosquitto: Any) -> Iterator[tuple[LiveNode, FakeServer]]:
    node = new_node()
    server = FakeServer(mosquitto.url)
    server.publish_acl(node, acl_dict(node=node, issued=utcnow(), valid_s=86400, version=1))
    live = LiveNode(node_cfg(tmp_path / "store", node, mosquitto.url), mock_pins).start()
    server.wait_status(node, state="idle", acl_version=1)
    try:
        yield live, server
    finally:
        live.stop()
        server.clear_retained(node)
        server.close()


def good_list(live: LiveNode, server: FakeServer, version: int) -> None:
    node = live.daemon.cfg.node_id
    server.publish_acl(node, acl_dict(node=node, issued=utcnow(), valid_s=86400,
                                      version=version))
    server.wait_status(node, acl_version=version)


def badge_opens(live: LiveNode) -> None:
    live.place(ALICE)
    wait_until(live.relay, 5, "relay on")
    live.remove()
    time.sleep(0.5)  # let the reader loop see the card go (it tolerates a few missed polls)
    live.place(ALICE)  # tap mode: the same badge again ends the session
    wait_until(lambda: not live.relay(), 5, "relay off")
    live.remove()


STAGES: list[tuple[str, str, Any, str]] = [
    # (topic kind, stage, what raises, attribute)
    ("acl", "decode", controller.daemon, "load_object"),
    ("acl", "validate", AccessList, "decode"),
    ("acl", "apply", NodeMachine, "offer_acl"),
    ("cmd", "decode", protocol.messages, "load_object"),
    ("cmd", "validate", Command, "decode"),
    ("cmd", "apply", NodeMachine, "command"),
    ("ack", "decode", protocol.messages, "load_object"),
    ("ack", "validate", Ack, "decode"),
    ("ack", "apply", Outbox, "acknowledge"),
]
ERRORS: list[BaseException] = [RuntimeError("injected handler bug"), KeyError("uid"),
                               RecursionError("deep"), OverflowError("date value out of range"),
                               AttributeError("'NoneType' object has no attribute 'uid'")]


def message_for(kind: str, node: str) -> bytes:
    if kind == "acl":
        return json.dumps(acl_dict(node=node, issued=utcnow(), version=2)).encode()
    if kind == "cmd":
        return Command.create("identify", utcnow()).encode()
    return Ack(ids=["00000000-0000-4000-8000-000000000000"]).encode()


def test_an_exception_at_each_stage_is_isolated(rig: tuple[LiveNode, FakeServer],
                                                monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    live, server = rig
    node = live.daemon.cfg.node_id
    caplog.set_level(logging.INFO)
    version = 10
    for i, (kind, stage, owner, name) in enumerate(STAGES):
        with monkeypatch.context() as mp:
            fault = Fault(mp, owner, name, ERRORS[i % len(ERRORS)])
            server.client.publish(server.topics.topic(server.site, node, kind),  # type: ignore[arg-type]
                                  message_for(kind, node), qos=1).wait_for_publish(5)
            assert fault.fired.wait(5), f"{kind}/{stage}: the fault never fired"
        version += 1
        good_list(live, server, version)
        assert live.alive, f"{kind}/{stage}: the node stopped"
    badge_opens(live)
    assert live.alive and not live.result
    # Logged with the topic and the failure, never with a badge UID at INFO or above.
    assert "injected handler bug" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and ALICE in r.getMessage()
                and "daemon" in r.name]


def nested(depth: int) -> bytes:
    return b'{"v":1,"x":' + b"[" * depth + b"]" * depth + b"}"


def hostile(node: str) -> list[tuple[str, bytes]]:
    base = acl_dict(node=node, issued=utcnow(), version=50)
    text = json.dumps(base)
    deep_badges = text.replace('"badges": [', '"badges": [' + "[" * 5000, 1).replace(
        ']}', "]" * 5000 + "]}", 1)
    big = dict(base, version=70, badges=[{"uid": f"04{i:06X}", "member": i, "label": "x" * 100}
                             for i in range(12000)])  # ~1.5 MB
    out: list[tuple[str, bytes]] = []
    for kind in ("acl", "cmd", "ack"):
        out += [(kind, b"[" * 50_000), (kind, nested(5000)), (kind, nested(100_000)),
                (kind, b'{"v":1,"data":' + nested(20_000) + b"}"),
                (kind, b"\x00" * 1000), (kind, b'{"v":1,"id":"\\u0000","ts":"\\ud800"}'),
                (kind, b"\xed\xa0\x80"), (kind, b'{"v":NaN,"version":1e308}'),
                (kind, b'{"v":1,"ids":[NaN, 1e308, -0.0, "\\udfff"],"rejected":"x"}')]
    huge = text.replace('"version": 50', '"version": 1' + "0" * 5000)  # over int()'s limit
    out.append(("acl", huge.encode()))
    for i, (key, value) in enumerate((
                       ("version", 1e308), ("version", float("nan")), ("version", -1),
                       ("issued", "9999-12-31T23:59:59-23:59"),
                       ("valid_until", "0001-01-01T00:00:00+23:59"),
                       ("issued", "0001-01-01T00:00:00Z"), ("node", "laser\u0000-1"),
                       ("policy", {"max_session_s": float("inf"), "grace_s": float("nan"),
                                   "heartbeat_s": 1e308, "warn_before_s": float("inf")}))):
        raw = dict(base, version=51 + i)
        raw[key] = value
        out.append(("acl", json.dumps(raw).encode()))
    out += [("acl", deep_badges.encode()), ("acl", json.dumps(big).encode()),
            ("cmd", json.dumps({"v": 1, "id": "6f1c4a8e-2b1d-4c55-9a53-1b2c3d4e5f60",
                                "ts": "9999-12-31T23:59:59-23:59", "cmd": "stop"}).encode()),
            ("cmd", json.dumps({"v": 1, "id": "6f1c4a8e-2b1d-4c55-9a53-1b2c3d4e5f61",
                                "ts": "0001-01-01T00:00:00+23:59", "cmd": "unlock"}).encode()),
            ("ack", json.dumps({"v": 1, "ids": ["\u0000" * 10, "\ud800"],
                                "rejected": [str(i) for i in range(100_000)]}).encode())]
    return out


def test_hostile_payloads_on_every_topic(rig: tuple[LiveNode, FakeServer]) -> None:
    live, server = rig
    node = live.daemon.cfg.node_id
    cases = hostile(node)
    for kind, payload in cases:
        for retain in (False, True) if kind == "acl" else (False,):
            server.client.publish(server.topics.topic(server.site, node, kind),  # type: ignore[arg-type]
                                  payload, qos=1, retain=retain).wait_for_publish(10)
    good_list(live, server, 99)  # a list after all of them is applied: every one was handled
    assert live.alive and not live.result
    badge_opens(live)
    assert live.daemon.machine is not None and live.daemon.machine.acl is not None
    assert live.daemon.machine.acl.version == 99
    assert len(cases) > 30
