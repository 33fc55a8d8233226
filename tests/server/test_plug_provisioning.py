"""A node provisioned with `--plug` (issue 16): the server keeps its actuator, the config carries
`[actuator]`, and a real Mosquitto started with the generated files gives the plug its own
credentials and ACL (its own topics only; the node may drive it)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import pytest
import test_broker_security as _tbs
from click.testing import CliRunner
from sqlalchemy import select
from test_broker_security import Setup

from firmware_config import validate_text
from firmware_config.provisioning import ProvisioningError
from server.models import NodeActuator
from server.services.provisioning import broker_files, provision, render_node_config

pytestmark = pytest.mark.broker
migrated_db = _tbs.migrated_db  # the broker-security fixtures: a real Mosquitto, two nodes
setup = _tbs.setup
DEVICE = "shellyplugsg3-a1b2c3"


def _reload(setup: Setup, user: str, password: str) -> None:
    assert setup.broker.proc is not None
    setup.broker.proc.send_signal(signal.SIGHUP)
    for _ in range(100):  # bounded: until the reload has happened
        if not setup.connect(user, password).reason.is_failure:
            return
        threading.Event().wait(0.05)
    raise AssertionError(f"{user} cannot connect after the reload")


def test_plug_gets_its_own_user_and_acl(setup: Setup) -> None:
    result = provision(setup.db, "node-a", "laser", plug=f"shelly:{DEVICE}")
    setup.db.commit()
    assert result.password is None and result.plug_password is not None
    assert result.plug_device == DEVICE
    assert '[actuator]\ntype = "shelly"\ndevice = "shellyplugsg3-a1b2c3"' in result.config
    cfg, report = validate_text(result.config, "node-a.toml",
                                {"FABPASS_MQTT_PASSWORD": setup.passwords["node-a"]})
    assert cfg is not None, report.problems
    assert (cfg.actuator.type, cfg.actuator.device, cfg.actuator.lease_s) == ("shelly", DEVICE, 60)
    assert cfg.gpio.relay is None  # the preset's relay is ignored with a plug
    assert "[actuator]" in render_node_config(setup.db, "node-a")  # the web download too
    files = setup.write_files()
    assert f"\n{DEVICE}:" in files["passwd"] and f"user {DEVICE}" in files["acl"]
    _reload(setup, DEVICE, result.plug_password)

    plug = setup.connect(DEVICE, result.plug_password)
    node = setup.connect("node-a")
    other = setup.connect("node-b")
    assert not any(r.is_failure for r in plug.subscribe(f"{DEVICE}/rpc"))
    assert not any(r.is_failure for r in node.subscribe(f"{DEVICE}/#",
                                                        "fabpass/v1/lab/node-a/plug/rpc"))
    # the node drives the plug; the plug answers into the node's own topics
    assert not node.publish(f"{DEVICE}/rpc", b'{"id":1}').is_failure
    plug.expect(f"{DEVICE}/rpc", b'{"id":1}')
    assert not plug.publish("fabpass/v1/lab/node-a/plug/rpc", b'{"id":1,"result":{}}').is_failure
    node.expect("fabpass/v1/lab/node-a/plug/rpc", b'{"id":1,"result":{}}')
    assert not plug.publish(f"{DEVICE}/online", b"true").is_failure
    node.expect(f"{DEVICE}/online", b"true")
    # the plug may not speak for any node, and another node may not drive it
    assert plug.publish("fabpass/v1/lab/node-a/event", b"x").is_failure
    assert plug.publish("fabpass/v1/lab/node-b/plug/rpc", b"x").is_failure
    assert other.publish(f"{DEVICE}/rpc", b"x").is_failure


def test_second_run_keeps_the_plug_password_and_rotate_changes_it(setup: Setup) -> None:
    first = provision(setup.db, "node-a", "laser", plug=f"tasmota:{DEVICE}")
    again = provision(setup.db, "node-a", "laser", plug=f"tasmota:{DEVICE}")
    kept = provision(setup.db, "node-a", "laser")  # no --plug: the node keeps its plug
    setup.db.commit()
    assert first.plug_password is not None and again.plug_password is None
    assert '[actuator]\ntype = "tasmota"' in kept.config
    files, _ = broker_files(setup.db)
    assert broker_files(setup.db)[0] == files  # byte-identical until something changes
    rotated = provision(setup.db, "node-a", "laser", plug=f"tasmota:{DEVICE}", rotate=True)
    assert rotated.plug_password is not None and rotated.plug_password != first.plug_password
    back = provision(setup.db, "node-a", "laser", plug="gpio")
    setup.db.commit()
    assert "[actuator]" not in back.config
    assert setup.db.scalar(select(NodeActuator.node_id)) is None
    assert DEVICE not in broker_files(setup.db)[0]["passwd"]


@pytest.mark.parametrize(("spec", "needle"), [
    ("shelly", "expected shelly:DEVICE"),
    ("zigbee:x", "expected shelly:DEVICE"),
    ("shelly:a/b", "plain topic level"),
    ("shelly:fabpass", "belong to others"),
    ("shelly:node-b", "equals a node's slug"),
    ("shelly:fabpass-server", "fabpass-server"),
])
def test_bad_plugs_are_refused_naming_the_problem(setup: Setup, spec: str, needle: str) -> None:
    with pytest.raises(ProvisioningError) as err:
        provision(setup.db, "node-a", "laser", plug=spec)
    assert needle in err.value.message


def test_one_device_one_node(setup: Setup) -> None:
    provision(setup.db, "node-a", "laser", plug=f"shelly:{DEVICE}")
    with pytest.raises(ProvisioningError, match="already driven by node 'node-a'"):
        provision(setup.db, "node-b", "printer", plug=f"shelly:{DEVICE}")


def test_cli_provision_with_plug(setup: Setup, tmp_path: Path) -> None:
    from fabpass.cli import main

    out = tmp_path / "node.toml"
    res = CliRunner().invoke(main, ["node", "provision", "node-a", "--machine", "laser",
                                    "--plug", f"shelly:{DEVICE}", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert f"Plug {DEVICE}: MQTT user {DEVICE}, password " in res.output
    assert 'type = "shelly"' in out.read_text()
    bad: Any = CliRunner().invoke(main, ["node", "provision", "node-a", "--machine", "laser",
                                         "--plug", "shelly:a/b"])
    assert bad.exit_code == 1 and "plain topic level" in bad.output
