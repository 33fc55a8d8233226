"""Broker identities (issue 13 item 2, contract section 6 "Identities"): one registry, no user
twice, reserved names refused; the clash checked against a real Mosquitto."""

from __future__ import annotations

import signal
import threading

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from tests.firmware_config.test_broker_security import (  # noqa: F401 (fixtures)
    SERVER_PW,
    Setup,
    migrated_db,
    setup,
)

from firmware_config.broker_users import (
    BrokerNameError,
    BrokerUserClash,
    BrokerUsers,
    check_broker_name,
    check_plug_device,
    reserved_broker_names,
    server_broker_user,
)
from firmware_config.mosquitto import NodeAccount, hash_password, render_acl, render_passwd


def test_reserved_names_come_from_the_mqtt_url() -> None:
    assert server_broker_user("mqtt://srv:pw@127.0.0.1:1883") == "srv"
    assert server_broker_user("mqtt://127.0.0.1:1883") == "fabpass-server"
    assert server_broker_user(None) == "fabpass-server"
    reserved = reserved_broker_names("mqtt://srv:pw@127.0.0.1:1883",
                                     services={"probe": "the monitoring probe's broker user"})
    assert set(reserved) == {"srv", "fabpass-server", "probe"}


@pytest.mark.parametrize(("slug", "kind", "owner"), [
    ("fabpass-server", "node", "the server's broker user"),
    ("Fabpass-Server", "machine", "the server's broker user"),
    ("srv", "site", "the server's broker user"),
    ("probe", "node", "the monitoring probe's broker user"),
])
def test_check_broker_name_refuses_reserved_names(slug: str, kind: str, owner: str) -> None:
    reserved = reserved_broker_names("mqtt://srv:pw@127.0.0.1:1883",
                                     services={"probe": "the monitoring probe's broker user"})
    with pytest.raises(BrokerNameError) as info:
        check_broker_name(slug, reserved, kind=kind)
    assert isinstance(info.value, ValueError) and info.value.field == "slug"
    assert info.value.message.startswith(f"{kind} slug {slug!r} equals {owner}")


def test_check_broker_name_accepts_other_slugs() -> None:
    reserved = reserved_broker_names("mqtt://fabpass-server:pw@127.0.0.1:1883")
    assert check_broker_name("laser-1", reserved) == "laser-1"
    assert check_broker_name("laser-1", ["srv"]) == "laser-1"
    with pytest.raises(BrokerNameError, match="node slug 'srv' equals a service's broker user"):
        check_broker_name("srv", ["srv"])


def _registry() -> BrokerUsers:
    users = BrokerUsers("fabpass")
    users.add_server("fabpass-server", "h0")
    users.add_node("laser-1", "h1", site="lab", node="laser-1")
    users.add_node("printer-1", "h2", site="lab", node="printer-1")
    return users


def test_registry_refuses_a_node_named_like_the_server() -> None:
    users = _registry()
    with pytest.raises(BrokerUserClash) as info:
        users.add_node("fabpass-server", "h3", site="lab", node="fabpass-server")
    assert info.value.message.startswith(
        "node slug 'fabpass-server' equals the server's broker user ('fabpass-server')")
    with pytest.raises(BrokerUserClash, match="node slug 'fabpass-server' equals the server's"):
        render_passwd("fabpass-server", "h0",
                      [NodeAccount("fabpass-server", "h3", "lab", "fabpass-server")])
    with pytest.raises(BrokerUserClash, match="node slug 'laser-1' equals node slug 'laser-1'"):
        render_acl("srv", [NodeAccount("laser-1", "a", "lab", "laser-1"),
                           NodeAccount("laser-1", "b", "shop", "laser-1")])


def test_registry_refuses_plug_clashes() -> None:
    users = _registry()
    with pytest.raises(BrokerUserClash, match="tasmota plug device 'printer-1' of node "
                                              "'laser-1' equals node slug 'printer-1'"):
        users.add_plug("laser-1", type="tasmota", device="printer-1", password_hash="p")
    with pytest.raises(BrokerUserClash, match="equals the server's broker user"):
        users.add_plug("laser-1", type="shelly", device="FABPASS-SERVER", password_hash="p")
    users.add_plug("laser-1", type="shelly", device="shellyplugsg3-a1b2c3", password_hash="p")
    with pytest.raises(BrokerUserClash, match="node 'laser-1' already drives plug"):
        users.add_plug("laser-1", type="tasmota", device="tasmota_1A2B3C", password_hash="p")
    with pytest.raises(BrokerUserClash, match="shelly plug device 'shellyplugsg3-a1b2c3' of "
                                              "node 'printer-1' equals shelly plug device"):
        users.add_plug("printer-1", type="shelly", device="shellyplugsg3-a1b2c3",
                       password_hash="p")
    with pytest.raises(BrokerNameError, match="node 'ghost' has no broker user"):
        users.add_plug("ghost", type="tasmota", device="tasmota_1A2B3C", password_hash="p")
    users.add_plug("printer-1", type="tasmota", device="tasmota_1A2B3C", password_hash="p")
    assert users.reserved() == {"fabpass-server": "the server's broker user"}
    with pytest.raises(BrokerNameError, match="node slug 'shellyplugsg3-a1b2c3' equals shelly "
                                              "plug device 'shellyplugsg3-a1b2c3' of node"):
        check_broker_name("shellyplugsg3-a1b2c3", users.taken())
    with pytest.raises(BrokerUserClash, match="node slug 'tasmota_1a2b3c' equals tasmota plug"):
        users.add_node("tasmota_1a2b3c", "h", site="lab", node="tasmota_1a2b3c")


@pytest.mark.parametrize("device", [
    "", "a/b", "a+", "#", "+", "plug/#", "$SYS", "a b", "a:b", "a\x00", "-x", "x" * 65,
    "é-plug", "plug\n",
])
def test_plug_device_must_be_one_plain_topic_level(device: str) -> None:
    with pytest.raises(BrokerNameError) as info:
        check_plug_device(device, plug_type="tasmota")
    assert info.value.field == "device"


@pytest.mark.parametrize("device", ["fabpass", "FabPass", "cmnd", "stat", "tele", "shellies"])
def test_shelly_device_cannot_own_another_namespace(device: str) -> None:
    with pytest.raises(BrokerNameError, match="would own the topics"):
        check_plug_device(device, plug_type="shelly")
    assert check_plug_device("lab42", plug_type="shelly") == "lab42"
    with pytest.raises(BrokerNameError, match="would own"):
        check_plug_device("org", plug_type="shelly", topic_root="org/fabpass")


def test_unknown_plug_type_is_refused() -> None:
    with pytest.raises(BrokerNameError) as info:
        check_plug_device("plug-1", plug_type="sonoff")
    assert info.value.field == "type"


def test_node_only_files_keep_their_format() -> None:
    """A lab without plugs regenerates byte-identical files (`unchanged`) after the upgrade."""
    nodes = [NodeAccount("laser-1", "$7$h1", "lab", "laser-1")]
    assert render_passwd("fabpass-server", "$7$h0", nodes) == (
        "fabpass-server:$7$h0\nlaser-1:$7$h1\n")
    assert render_acl("fabpass-server", nodes) == "\n".join([
        "# fabpass broker ACL - generated by `fabpass broker config`; do not edit by hand.",
        "# No topic lines before the first `user`: anonymous clients get nothing.",
        "",
        "# the server: reads every node's status and events, publishes lists, acks, commands",
        "user fabpass-server",
        "topic read fabpass/v1/+/+/status",
        "topic read $share/+/fabpass/v1/+/+/status",
        "topic read fabpass/v1/+/+/event",
        "topic read $share/+/fabpass/v1/+/+/event",
        "topic readwrite fabpass/v1/+/+/acl",
        "topic write fabpass/v1/+/+/ack",
        "topic write fabpass/v1/+/+/cmd",
        "",
        "user laser-1",
        "topic write fabpass/v1/lab/laser-1/status",
        "topic write fabpass/v1/lab/laser-1/event",
        "topic read fabpass/v1/lab/laser-1/acl",
        "topic read fabpass/v1/lab/laser-1/ack",
        "topic read fabpass/v1/lab/laser-1/cmd",
    ]) + "\n"


def test_broker_config_refuses_a_node_named_like_the_server_user(setup: Setup) -> None:  # noqa: F811
    """Issue 13 item 2: a node row slugged `fabpass-server` (made before the rule, or by a path
    that forgot it) used to be written as a second `fabpass-server` user, locking the server
    out and giving the node's password the server's rights. Now `fabpass broker config` exits
    non-zero naming the clash, writes nothing, and the broker keeps serving the real server."""
    from fabpass.cli import main
    from server import services
    from server.models import Machine, Node, Site

    stolen = "the-node-password"
    site = setup.db.scalar(select(Site).where(Site.slug == "lab"))
    machine = services.create_machine(setup.db, "cutter", "Cutter", "lab", actor="test")
    node = Node(slug="fabpass-server", site_id=site.id, mqtt_username="fabpass-server",
                mqtt_password_hash=hash_password(stolen))
    setup.db.add(node)
    setup.db.flush()
    setup.db.get(Machine, machine.id).node_id = node.id
    setup.db.commit()
    before = {p.name: p.read_bytes() for p in setup.out.iterdir()}

    result = CliRunner().invoke(main, ["broker", "config", "--out", str(setup.out),
                                       "--install-dir", str(setup.out)])
    assert result.exit_code != 0, result.output
    assert ("node slug 'fabpass-server' equals the server's broker user ('fabpass-server')"
            in result.output), result.output
    assert "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in setup.out.iterdir()} == before

    assert setup.broker.proc is not None
    setup.broker.proc.send_signal(signal.SIGHUP)  # an operator's reload changes nothing
    threading.Event().wait(0.3)
    assert setup.connect("fabpass-server", "the-node-password").reason.is_failure
    server = setup.connect("fabpass-server", SERVER_PW)
    assert not server.reason.is_failure
    assert not server.publish("fabpass/v1/lab/node-b/acl", b"list", retain=True).is_failure
    b = setup.connect("node-b")
    b.subscribe("fabpass/v1/lab/node-b/acl")
    b.expect("fabpass/v1/lab/node-b/acl", b"list")
