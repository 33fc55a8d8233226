"""Smart plugs' broker identities (issue 16, contract section 6 "Actuators") on a real Mosquitto
loading files generated from the registry: a plug uses only its own topics, a node only its
own plug's, and the server is unaffected."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from tests.firmware_config.test_broker_security import SERVER_PW, Client, connect

from fabpass.broker import MosquittoProcess
from firmware_config.broker_users import BrokerUsers
from firmware_config.mosquitto import hash_password, new_password, render_files

pytestmark = pytest.mark.broker

SHELLY_A = "shellyplugsg3-a1b2c3d4e5f6"  # plug of node-a (site lab)
TASMOTA_B = "tasmota_1A2B3C"  # plug of node-b (site lab)
TASMOTA_C = "tasmota_4D5E6F"  # plug of node-c (site shop)
NOT_AUTHORIZED = 0x87


@dataclass
class Broker:
    process: MosquittoProcess
    passwords: dict[str, str]
    clients: list[Client] = field(default_factory=list)

    def connect(self, user: str) -> Client:
        client = connect(self.process.port, user, self.passwords[user], protocol=mqtt.MQTTv5)
        assert not client.reason.is_failure, (user, client.reason)
        self.clients.append(client)
        return client


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[Broker]:
    passwords = {"fabpass-server": SERVER_PW}
    users = BrokerUsers("fabpass")
    users.add_server("fabpass-server", hash_password(SERVER_PW))
    for node, site in (("node-a", "lab"), ("node-b", "lab"), ("node-c", "shop")):
        passwords[node] = new_password()
        users.add_node(node, hash_password(passwords[node]), site=site, node=node)
    for node, kind, device in (("node-a", "shelly", SHELLY_A), ("node-b", "tasmota", TASMOTA_B),
                               ("node-c", "tasmota", TASMOTA_C)):
        passwords[device] = new_password()
        users.add_plug(node, type=kind, device=device,  # type: ignore[arg-type]
                       password_hash=hash_password(passwords[device]))
    out = tmp_path / "broker"
    out.mkdir()
    for name, text in render_files(users, str(out)).items():
        (out / name).write_text(text)
    run_as = "user root\n" if os.geteuid() == 0 else ""
    process = MosquittoProcess(None, tmp_path / "mosq", allow_anonymous=False, persistence=False,
                               extra_config=f"password_file {out}/passwd\n"
                                            f"acl_file {out}/acl\n{run_as}")
    b = Broker(process.start(), passwords)
    yield b
    for client in b.clients:
        client.client.disconnect()
        client.client.loop_stop()
    process.cleanup()


def _refused(client: Client, *topics: str) -> None:
    for topic in topics:
        reason = client.publish(topic, b"forged")
        assert reason.is_failure and reason.value == NOT_AUTHORIZED, (topic, reason)


def test_tasmota_plug_uses_only_its_own_topics(broker: Broker) -> None:
    plug_b, plug_c = broker.connect(TASMOTA_B), broker.connect(TASMOTA_C)
    node_b, node_c = broker.connect("node-b"), broker.connect("node-c")
    plug_b.subscribe(f"cmnd/{TASMOTA_B}/#", f"cmnd/{TASMOTA_C}/#", "fabpass/v1/#")
    node_c.subscribe(f"stat/{TASMOTA_C}/#", f"tele/{TASMOTA_C}/#")
    for topic, payload in ((f"stat/{TASMOTA_B}/POWER", b"ON"),
                           (f"tele/{TASMOTA_B}/SENSOR", b'{"ENERGY":{"Power":12}}')):
        assert not plug_b.publish(topic, payload).is_failure, topic
    assert not plug_b.publish(f"tele/{TASMOTA_B}/LWT", b"Online", retain=True).is_failure
    _refused(plug_b, f"stat/{TASMOTA_C}/POWER", f"tele/{TASMOTA_C}/LWT",
             f"cmnd/{TASMOTA_C}/POWER", f"cmnd/{TASMOTA_B}/POWER",
             "fabpass/v1/lab/node-b/event", "fabpass/v1/lab/node-b/status",
             "fabpass/v1/lab/node-b/plug/rpc", "fabpass/v1/lab/node-a/plug/rpc",
             f"{SHELLY_A}/rpc", f"{SHELLY_A}/events/rpc")
    assert not plug_c.publish(f"stat/{TASMOTA_C}/POWER", b"marker").is_failure
    assert node_c.expect(f"stat/{TASMOTA_C}/POWER", b"marker") == [], "a forged state arrived"
    # the plug hears its own node's commands, not another plug's, nor the nodes' topics
    assert not node_c.publish(f"cmnd/{TASMOTA_C}/POWER", b"OFF").is_failure
    assert not node_b.publish("fabpass/v1/lab/node-b/event", b"e").is_failure
    assert not node_b.publish(f"cmnd/{TASMOTA_B}/POWER", b"ON").is_failure
    assert plug_b.expect(f"cmnd/{TASMOTA_B}/POWER", b"ON") == []


def test_node_commands_its_own_plug_only(broker: Broker) -> None:
    node_a, node_b = broker.connect("node-a"), broker.connect("node-b")
    plug_b, plug_c = broker.connect(TASMOTA_B), broker.connect(TASMOTA_C)
    shelly = broker.connect(SHELLY_A)
    plug_c.subscribe(f"cmnd/{TASMOTA_C}/#")
    shelly.subscribe(f"{SHELLY_A}/rpc")
    for topic, payload in ((f"cmnd/{TASMOTA_B}/PulseTime", b"160"),
                           (f"cmnd/{TASMOTA_B}/POWER", b"ON")):
        assert not node_b.publish(topic, payload).is_failure, topic
    _refused(node_b, f"cmnd/{TASMOTA_C}/POWER", f"cmnd/{TASMOTA_C}/PulseTime",
             f"{SHELLY_A}/rpc", f"stat/{TASMOTA_B}/POWER", f"tele/{TASMOTA_B}/LWT")
    _refused(node_a, f"cmnd/{TASMOTA_B}/POWER", f"cmnd/{TASMOTA_C}/POWER",
             f"{SHELLY_A}/online", f"{SHELLY_A}/events/rpc", "fabpass/v1/lab/node-a/plug/rpc")
    assert not broker.connect("node-c").publish(f"cmnd/{TASMOTA_C}/POWER", b"mine").is_failure
    assert plug_c.expect(f"cmnd/{TASMOTA_C}/POWER", b"mine") == [], "a foreign command arrived"
    assert not node_a.publish(f"{SHELLY_A}/rpc", b"frame").is_failure
    assert shelly.expect(f"{SHELLY_A}/rpc", b"frame") == []
    # node B reads its own plug's states, not another plug's
    node_b.subscribe(f"stat/{TASMOTA_B}/#", f"tele/{TASMOTA_B}/#", f"stat/{TASMOTA_C}/#",
                     f"{SHELLY_A}/#")
    assert not plug_c.publish(f"stat/{TASMOTA_C}/POWER", b"ON").is_failure
    assert not shelly.publish(f"{SHELLY_A}/events/rpc", b"{}").is_failure
    assert not plug_b.publish(f"stat/{TASMOTA_B}/POWER", b"OFF").is_failure
    assert node_b.expect(f"stat/{TASMOTA_B}/POWER", b"OFF") == []


def test_shelly_rpc_round_trip_stays_inside_its_node(broker: Broker) -> None:
    node_a, node_b = broker.connect("node-a"), broker.connect("node-b")
    shelly = broker.connect(SHELLY_A)
    shelly.subscribe(f"{SHELLY_A}/rpc")
    node_a.subscribe("fabpass/v1/lab/node-a/plug/rpc", f"{SHELLY_A}/events/rpc",
                     f"{SHELLY_A}/online")
    src = "fabpass/v1/lab/node-a/plug"
    frame = json.dumps({"id": 7, "src": src, "method": "Switch.Set",
                        "params": {"id": 0, "on": True, "toggle_after": 60}}).encode()
    assert not node_a.publish(f"{SHELLY_A}/rpc", frame).is_failure
    shelly.expect(f"{SHELLY_A}/rpc", frame)
    answer = json.dumps({"id": 7, "src": SHELLY_A, "dst": src,
                         "result": {"was_on": False}}).encode()
    assert not shelly.publish(f"{src}/rpc", answer).is_failure
    assert node_a.expect(f"{src}/rpc", answer) == []
    note = json.dumps({"src": SHELLY_A, "dst": src, "method": "NotifyStatus",
                       "params": {"switch:0": {"output": True}}}).encode()
    assert not shelly.publish(f"{SHELLY_A}/events/rpc", note).is_failure
    assert not shelly.publish(f"{SHELLY_A}/online", b"true", retain=True).is_failure
    assert not shelly.publish(f"{SHELLY_A}/status/switch:0", b"{}").is_failure
    node_a.expect(f"{SHELLY_A}/events/rpc", note)
    node_a.expect(f"{SHELLY_A}/online", b"true")
    # neither the plug nor another node can forge into a node's own topics
    _refused(shelly, "fabpass/v1/lab/node-b/plug/rpc", "fabpass/v1/lab/node-a/event",
             "fabpass/v1/lab/node-a/status", "fabpass/v1/lab/node-a/acl",
             "fabpass/v1/lab/node-a/plug/other", f"cmnd/{TASMOTA_B}/POWER",
             f"stat/{TASMOTA_B}/POWER")
    _refused(node_b, f"{src}/rpc", f"{SHELLY_A}/online")


def test_server_user_still_works_with_plugs(broker: Broker) -> None:
    server = broker.connect("fabpass-server")
    assert not any(r.is_failure for r in server.subscribe(
        "$share/ingest/fabpass/v1/+/+/event", "fabpass/v1/+/+/status"))
    node_a = broker.connect("node-a")
    node_a.subscribe("fabpass/v1/lab/node-a/acl", "fabpass/v1/lab/node-a/cmd")
    assert not node_a.publish("fabpass/v1/lab/node-a/event", b"tap").is_failure
    server.expect("fabpass/v1/lab/node-a/event", b"tap")
    assert not server.publish("fabpass/v1/lab/node-a/acl", b"list", retain=True).is_failure
    assert not server.publish("fabpass/v1/lab/node-a/cmd", b"cmd").is_failure
    node_a.expect("fabpass/v1/lab/node-a/acl", b"list")
    node_a.expect("fabpass/v1/lab/node-a/cmd", b"cmd")
