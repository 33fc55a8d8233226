"""A real Mosquitto started with the generated passwd/acl enforces per-node isolation."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from fabpass.broker import MosquittoProcess, free_port
from firmware_config.mosquitto import hash_password, verify_password
from server.services.provisioning import broker_files, provision, revoke_node

pytestmark = pytest.mark.broker

SERVER_PW = "server-pw-for-tests"
WAIT = 5.0


@dataclass
class Client:
    """A paho client with its connection outcome and a queue of (topic, payload)."""

    client: mqtt.Client
    reason: Any = None
    messages: queue.Queue[tuple[str, bytes]] = field(default_factory=queue.Queue)
    pubacks: dict[int, Any] = field(default_factory=dict)
    subacks: dict[int, list[Any]] = field(default_factory=dict)
    acked: threading.Condition = field(default_factory=threading.Condition)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> Any:
        """Publish at QoS 1 and return the broker's PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with self.acked:
            assert self.acked.wait_for(lambda: info.mid in self.pubacks, WAIT), "no PUBACK"
            return self.pubacks[info.mid]

    def subscribe(self, *topics: str) -> list[Any]:
        _, mid = self.client.subscribe([(t, 1) for t in topics])
        with self.acked:
            assert self.acked.wait_for(lambda: mid in self.subacks, WAIT), "no SUBACK"
            return self.subacks[mid]

    def expect(self, topic: str, payload: bytes) -> list[tuple[str, bytes]]:
        """Wait (bounded) for `payload` on `topic`; return everything received before it."""
        before: list[tuple[str, bytes]] = []
        for _ in range(1000):
            item = self.messages.get(timeout=WAIT)
            if item == (topic, payload):
                return before
            before.append(item)
        raise AssertionError("message never came")


def connect(port: int, user: str | None, password: str | None, *,
            protocol: int = mqtt.MQTTv5) -> Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}",
                    protocol=protocol)
    if user:
        c.username_pw_set(user, password)
    wrapper = Client(c)
    connected = threading.Event()

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        wrapper.reason = reason
        connected.set()

    def on_publish(_c: Any, _u: Any, mid: int, reason: Any, _p: Any = None) -> None:
        with wrapper.acked:
            wrapper.pubacks[mid] = reason
            wrapper.acked.notify_all()

    def on_subscribe(_c: Any, _u: Any, mid: int, reasons: list[Any], _p: Any = None) -> None:
        with wrapper.acked:
            wrapper.subacks[mid] = reasons
            wrapper.acked.notify_all()

    c.on_connect = on_connect
    c.on_publish = on_publish
    c.on_subscribe = on_subscribe
    c.on_message = lambda _c, _u, m: wrapper.messages.put((m.topic, m.payload))
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert connected.wait(WAIT), "no CONNACK"
    return wrapper


@dataclass
class Setup:
    db: Any
    broker: MosquittoProcess
    out: Path
    passwords: dict[str, str]
    configs: dict[str, str]
    clients: list[Client] = field(default_factory=list)

    def connect(self, user: str | None, password: str | None = None, *,
                protocol: int = mqtt.MQTTv5) -> Client:
        if user is not None and password is None:
            password = SERVER_PW if user == "fabpass-server" else self.passwords[user]
        client = connect(self.broker.port, user, password, protocol=protocol)
        self.clients.append(client)
        return client

    def write_files(self) -> dict[str, str]:
        files, _ = broker_files(self.db, install_dir=str(self.out))
        self.db.commit()
        for name, text in files.items():
            (self.out / name).write_text(text)
        return files


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per module, copied by each test (migrations are slow-ish)."""
    from server.db import upgrade

    path = tmp_path_factory.mktemp("db") / "fabpass.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture()
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_db: Path) -> Iterator[Setup]:
    from server import services
    from server.db import make_engine, make_sessionmaker

    port = free_port()
    shutil.copy(migrated_db, tmp_path / "fabpass.db")
    url = f"sqlite:///{tmp_path}/fabpass.db"
    monkeypatch.setenv("FABPASS_DATABASE_URL", url)
    monkeypatch.setenv("FABPASS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FABPASS_MQTT_URL", f"mqtt://fabpass-server:{SERVER_PW}@127.0.0.1:{port}")
    monkeypatch.delenv("FABPASS_TOPIC_ROOT", raising=False)
    monkeypatch.delenv("FABPASS_NODE_MQTT_URL", raising=False)
    engine = make_engine(url)
    db = make_sessionmaker(engine)()
    services.create_site(db, "lab", "Lab", actor="test")
    services.create_machine(db, "laser", "Laser", "lab", actor="test")
    services.create_machine(db, "printer", "Printer", "lab", actor="test")
    passwords, configs = {}, {}
    for node, machine in (("node-a", "laser"), ("node-b", "printer")):
        result = provision(db, node, machine)
        assert result.password is not None
        passwords[node], configs[node] = result.password, result.config
    db.commit()
    out = tmp_path / "broker"
    out.mkdir()
    # as root, Mosquitto would drop to the `mosquitto` user, who cannot read pytest's tmp dir
    run_as = "user root\n" if os.geteuid() == 0 else ""
    broker = MosquittoProcess(
        port, tmp_path / "mosq", allow_anonymous=False,
        extra_config=f"password_file {out}/passwd\nacl_file {out}/acl\n{run_as}")
    s = Setup(db, broker, out, passwords, configs)
    s.write_files()
    broker.start()
    yield s
    for client in s.clients:
        client.client.disconnect()
        client.client.loop_stop()
    broker.cleanup()
    db.close()
    engine.dispose()


def test_anonymous_and_wrong_password_refused(setup: Setup) -> None:
    assert setup.connect(None).reason.is_failure
    assert setup.connect("node-a", "wrong").reason.is_failure
    assert setup.connect(None, protocol=mqtt.MQTTv311).reason.is_failure
    assert not setup.connect("node-a").reason.is_failure


def test_node_event_reaches_server(setup: Setup) -> None:
    server = setup.connect("fabpass-server")
    assert not any(r.is_failure for r in server.subscribe("fabpass/v1/+/+/event",
                                                          "fabpass/v1/+/+/status"))
    a = setup.connect("node-a")
    assert not a.publish("fabpass/v1/lab/node-a/event", b'{"v":1}').is_failure
    assert server.expect("fabpass/v1/lab/node-a/event", b'{"v":1}') == []
    assert not a.publish("fabpass/v1/lab/node-a/status", b"s", retain=True).is_failure
    server.expect("fabpass/v1/lab/node-a/status", b"s")


def test_server_shared_subscription(setup: Setup) -> None:
    server = setup.connect("fabpass-server")
    (granted,) = server.subscribe("$share/ingest/fabpass/v1/+/+/event")
    assert not granted.is_failure
    a = setup.connect("node-a")
    a.publish("fabpass/v1/lab/node-a/event", b"e1")
    server.expect("fabpass/v1/lab/node-a/event", b"e1")


def test_node_cannot_publish_as_another_mqtt5(setup: Setup) -> None:
    server = setup.connect("fabpass-server")
    server.subscribe("fabpass/v1/+/+/event", "fabpass/v1/+/+/status")
    a = setup.connect("node-a")
    for topic in ("fabpass/v1/lab/node-b/event", "fabpass/v1/lab/node-b/status",
                  "fabpass/v1/other/node-a/event", "fabpass/v1/lab/node-a/acl",
                  "fabpass/v1/lab/node-b/cmd"):
        reason = a.publish(topic, b"forged")
        assert reason.is_failure and reason.value == 0x87, (topic, reason)  # Not authorized
    a.publish("fabpass/v1/lab/node-a/event", b"marker")
    assert server.expect("fabpass/v1/lab/node-a/event", b"marker") == []


def test_node_cannot_publish_as_another_mqtt311(setup: Setup) -> None:
    server = setup.connect("fabpass-server")
    server.subscribe("fabpass/v1/+/+/event")
    a = setup.connect("node-a", protocol=mqtt.MQTTv311)
    a.publish("fabpass/v1/lab/node-b/event", b"forged")  # 3.1.1: acked, silently dropped
    a.publish("fabpass/v1/lab/node-a/event", b"marker")
    assert server.expect("fabpass/v1/lab/node-a/event", b"marker") == []


def test_server_publishes_lists_acks_commands_to_its_node_only(setup: Setup) -> None:
    server = setup.connect("fabpass-server")
    assert not server.publish("fabpass/v1/lab/node-b/acl", b"list-b", retain=True).is_failure
    assert not server.publish("fabpass/v1/lab/node-a/acl", b"list-a", retain=True).is_failure
    a = setup.connect("node-a")
    reasons = a.subscribe("fabpass/v1/lab/node-a/acl", "fabpass/v1/lab/node-a/ack",
                          "fabpass/v1/lab/node-a/cmd", "fabpass/v1/lab/node-b/acl",
                          "fabpass/v1/lab/node-b/cmd", "fabpass/v1/+/+/event")
    assert [r.is_failure for r in reasons[:3]] == [False] * 3
    # Mosquitto 2.0 grants these subscriptions but checks the read ACL on each delivery:
    # the assertions below prove nothing of B's (and no other node's event) reaches A
    a.expect("fabpass/v1/lab/node-a/acl", b"list-a")  # retained, delivered on subscribe
    for kind in ("ack", "cmd"):
        assert not server.publish(f"fabpass/v1/lab/node-a/{kind}", kind.encode()).is_failure
    b = setup.connect("node-b")
    b.publish("fabpass/v1/lab/node-b/event", b"b-event")
    server.publish("fabpass/v1/lab/node-b/cmd", b"cmd-b")
    server.publish("fabpass/v1/lab/node-a/cmd", b"last")
    seen = a.expect("fabpass/v1/lab/node-a/ack", b"ack")
    seen += a.expect("fabpass/v1/lab/node-a/cmd", b"cmd")
    seen += a.expect("fabpass/v1/lab/node-a/cmd", b"last")
    assert seen == [], "node A received something that is not its own"


def test_revoked_node_is_locked_out(setup: Setup) -> None:
    assert revoke_node(setup.db, "node-b") is True
    assert revoke_node(setup.db, "node-b") is False
    setup.db.commit()
    files = setup.write_files()
    assert "node-b" not in files["passwd"] and "node-b" not in files["acl"]
    assert setup.broker.proc is not None
    setup.broker.proc.send_signal(signal.SIGHUP)  # `systemctl reload mosquitto`
    for _ in range(100):  # bounded: until the reload has happened
        if setup.connect("node-b").reason.is_failure:
            break
        threading.Event().wait(0.05)
    else:
        raise AssertionError("the revoked node can still connect after a reload")
    assert not setup.connect("node-a").reason.is_failure


def test_provisioning_twice_changes_nothing(setup: Setup) -> None:
    before = {p.name: p.read_bytes() for p in setup.out.iterdir()}
    again = provision(setup.db, "node-a", "laser")
    setup.db.commit()
    assert again.password is None and again.created is False
    assert "password = " not in again.config
    setup.write_files()
    assert {p.name: p.read_bytes() for p in setup.out.iterdir()} == before
    rotated = provision(setup.db, "node-a", "laser", rotate=True)
    setup.db.commit()
    assert rotated.password is not None and rotated.password != setup.passwords["node-a"]
    assert f'password = "{rotated.password}"' in rotated.config
    setup.write_files()
    assert (setup.out / "passwd").read_bytes() != before["passwd"]
    assert (setup.out / "acl").read_bytes() == before["acl"]


def test_generated_conf_is_accepted_by_mosquitto(setup: Setup, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    certs = tmp_path / "certs"
    certs.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(certs / "server.key"),
                    "-out", str(certs / "server.crt")], check=True, capture_output=True,
                   timeout=60)
    shutil.copy(certs / "server.crt", certs / "ca.crt")
    tls_port, plain_port = free_port(), free_port()
    conf = (setup.out / "mosquitto.conf").read_text()
    conf = (conf.replace("/etc/mosquitto/certs", str(certs))
            .replace("listener 8883", f"listener {tls_port} 127.0.0.1")
            .replace("listener 1883 127.0.0.1", f"listener {plain_port} 127.0.0.1")
            + "persistence false\n" + ("user root\n" if os.geteuid() == 0 else ""))
    path = tmp_path / "full.conf"
    path.write_text(conf)
    broker = subprocess.Popen([setup.broker.binary, "-c", str(path)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        client: Client | None = None
        for _ in range(100):  # bounded: until the plain listener is up
            if broker.poll() is not None:
                raise AssertionError(broker.stdout.read().decode() if broker.stdout else "")
            try:
                client = connect(plain_port, "node-a", setup.passwords["node-a"])
                break
            except OSError:
                threading.Event().wait(0.05)
        assert client is not None and not client.reason.is_failure
        client.client.disconnect()
        client.client.loop_stop()
    finally:
        broker.terminate()
        broker.wait(10)


def test_hash_matches_mosquitto_passwd(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd is not installed")
    path = tmp_path / "pw"
    subprocess.run([tool, "-b", "-c", str(path), "alice", "s3cret"], check=True, timeout=30,
                   capture_output=True)
    stored = path.read_text().strip().split(":", 1)[1]
    assert stored.startswith("$7$101$")
    assert verify_password(stored, "s3cret") and not verify_password(stored, "other")
    salt = stored.split("$")[3]
    import base64

    assert hash_password("s3cret", salt=base64.b64decode(salt)) == stored


def test_provisioned_config_works_as_installed(setup: Setup, tmp_path: Path) -> None:
    """docs/install-pi.md step 8: password moved to FABPASS_MQTT_PASSWORD, config checked,
    then the doctor's broker check connects with it."""
    from firmware_config import validate_text
    from firmware_config.doctor import Doctor

    text, password = setup.configs["node-a"], setup.passwords["node-a"]
    assert f'password = "{password}"' in text
    stripped = "\n".join(line for line in text.splitlines()
                         if not line.startswith("password = "))
    cfg, report = validate_text(stripped, "node-a.toml",
                                {"FABPASS_MQTT_PASSWORD": setup.passwords["node-a"]})
    assert cfg is not None, report.problems
    assert (cfg.node_id, cfg.site, cfg.mqtt.username) == ("node-a", "lab", "node-a")
    assert cfg.mqtt.url == f"mqtt://127.0.0.1:{setup.broker.port}"  # no server credentials
    assert cfg.storage.dir == "/var/lib/fabpass/node-a"
    result = Doctor(cfg, timeout=3.0).check_broker()
    assert result.ok is True, result


def _wait_db(db: Any, query: Any, timeout: float = 15.0) -> Any:
    """Poll the database (bounded) until `query` returns something."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.rollback()
        value = db.scalar(query)
        if value:
            return value
        threading.Event().wait(0.1)
    raise AssertionError(f"nothing in the database within {timeout} s")


@pytest.mark.slow
def test_server_and_node_work_end_to_end_with_generated_credentials(
        setup: Setup, tmp_path: Path) -> None:
    """The real server core and `fabpass node --simulate`, each with its generated
    credentials under the generated ACL: list delivered, tap → session stored and acked."""
    import sys

    from sqlalchemy import select

    from server import services
    from server.db import make_engine
    from server.models import Machine, Node, UsageSession
    from server.runner import CoreOptions, ServerCore

    alice = services.create_member(setup.db, "Alice", actor="test")
    services.enrol_badge(setup.db, alice.id, "04A1B2C3", actor="test")
    laser = setup.db.scalar(select(Machine).where(Machine.slug == "laser"))
    services.grant(setup.db, alice.id, machine_id=laser.id, actor="test")
    setup.db.commit()

    engine = make_engine(os.environ["FABPASS_DATABASE_URL"])
    core = ServerCore(engine, CoreOptions(mqtt_url=os.environ["FABPASS_MQTT_URL"],
                                          client_id="fabpass-server-test"))
    core.start()
    config = tmp_path / "node-a.toml"
    config.write_text(setup.configs["node-a"].replace("/var/lib/fabpass/node-a",
                                                      str(tmp_path / "state")))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("NOTIFY_SOCKET", None)
    node = subprocess.Popen([sys.executable, "-m", "fabpass", "node", "--config", str(config),
                             "--simulate"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True, env=env,
                            cwd=Path(__file__).parents[2])
    try:
        assert core.link.wait_connected(5), "the server user could not connect"
        _wait_db(setup.db, select(Node.online).where(Node.slug == "node-a"))
        version = _wait_db(setup.db, select(Node.acl_version).where(Node.slug == "node-a"))
        assert version > 0  # the node reported the list the server published
        assert node.stdin is not None
        node.stdin.write("tap 04A1B2C3\n")
        node.stdin.flush()
        session = _wait_db(setup.db, select(UsageSession).where(
            UsageSession.member_id == alice.id))
        assert session.machine_id == laser.id
    finally:
        node.terminate()
        try:
            node.wait(10)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait(5)
        core.stop()
        engine.dispose()
