"""The Raspberry Pi install path, run for real on a Debian bookworm arm64 root (issue 22).

tools/pi-check.sh builds the root with debootstrap (qemu-user runs its arm64 programs), runs
tools/install-node.sh in it from a copy of this checkout, and checks what a volunteer would:
`fabpass --version`, `fabpass config check`, the doctor, `systemd-analyze verify`, a second
install run that changes nothing, the installer's refusals, and a `--upgrade` that waits for the
running session. This test is the server: it publishes the node's access list on a real
Mosquitto on the host's loopback (the chroot shares the host's network) and must receive the
`session.started` of the badge the simulated node taps inside the root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from node_harness import FakeServer

from fabpass.broker import MosquittoProcess
from protocol import AccessList, BadgeEntry, utcnow

ROOT = Path(__file__).resolve().parents[2]
UID = "04A1B2C3D4E5F6"
PHASE = re.compile(r"^pi-check: (?P<name>.+) (?P<s>\d+) s$", re.M)

pytestmark = [pytest.mark.slow, pytest.mark.broker]


def access_list(node: str) -> bytes:
    from datetime import timedelta

    now = utcnow()
    return AccessList(version=1, site="lab", node=node, machine="laser", issued=now,
                      valid_until=now + timedelta(days=1), locked=False, policy={},
                      badges=[BadgeEntry(uid=UID, member=1, role="user", until=None)]).encode()


@pytest.mark.timeout(1500)
def test_install_node_on_arm64_then_a_tap_starts_a_session(mosquitto: MosquittoProcess) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: debootstrap, chroot and mounts (CI runs as root)")
    for tool in ("mosquitto", "unshare", "chroot"):
        assert shutil.which(tool), f"{tool} is needed"
    node = f"pi-{uuid.uuid4().hex[:8]}"
    server = FakeServer(mosquitto.url)
    try:
        server.client.publish(server.topics.acl("lab", node), access_list(node), qos=1,
                              retain=True).wait_for_publish(5)
        run = subprocess.run(
            ["bash", str(ROOT / "tools" / "pi-check.sh"), "--mqtt-url", mosquitto.url,
             "--node", node, "--uid", UID],
            capture_output=True, text=True, timeout=1400, check=False,
            env={**os.environ, "FABPASS_HOST_PYTHON": sys.executable})
        output = run.stdout + run.stderr
        assert run.returncode == 0, output[-6000:]
        started = server.wait_event(node, "session.started", uid=UID, timeout=5)
        ended = server.wait_event(node, "session.ended", uid=UID, timeout=30)
        assert ended.data["session"] == started.data["session"]
        assert ended.data["reason"] == "badge_out"  # the tap after --upgrade began to wait
    finally:
        server.clear_retained(node)
        server.close()
    phases = {m["name"]: int(m["s"]) for m in PHASE.finditer(run.stdout)}
    print("pi-check durations:", phases)
    assert "install" in phases and "second install run" in phases
    for said in ("✗ spi: no SPI bus here", "✗ gpio: no GPIO here", "no node config",
                 "32-bit system (armhf)", "not enough free disk space", "no network",
                 "a session is running on the machine", "second run: no file changed"):
        assert said in output, said
