"""The systemd units are well formed and start the commands the CLI really has."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

UNITS = Path(__file__).parents[2] / "firmware_config" / "systemd"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


def test_node_unit_restarts_and_is_watched() -> None:
    service = unit("fabpass-node.service")["Service"]
    assert service["Type"] == "notify" and service["WatchdogSec"] == "30"
    assert service["Restart"] == "always"
    assert "gpio" in service["SupplementaryGroups"] and "spi" in service["SupplementaryGroups"]
    assert service["User"] == "fabpass"
    assert service["StateDirectory"] == "fabpass"
    assert service["WorkingDirectory"] == "/var/lib/fabpass"  # lgpio writes its pipes there


def test_node_unit_is_the_one_the_installer_writes() -> None:
    """Contract section 6: one node per Pi, /opt/fabpass/bin/fabpass, /etc/fabpass/node.toml."""
    assert not list(UNITS.glob("fabpass-node@*"))
    argv = shlex.split(unit("fabpass-node.service")["Service"]["ExecStart"])
    assert argv == ["/opt/fabpass/bin/fabpass", "node", "--config", "/etc/fabpass/node.toml"]
    assert "EnvironmentFile" not in unit("fabpass-node.service")["Service"]


def test_watchdog_is_twice_what_the_node_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    from controller.sdnotify import watchdog_interval

    watchdog_s = int(unit("fabpass-node.service")["Service"]["WatchdogSec"])
    monkeypatch.setenv("WATCHDOG_USEC", str(watchdog_s * 1_000_000))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval() == watchdog_s / 2


@pytest.mark.parametrize("name", ["fabpass-node.service", "fabpass-server.service"])
def test_exec_start_is_a_real_command(name: str) -> None:
    from fabpass.cli import main

    argv = shlex.split(unit(name)["Service"]["ExecStart"])
    assert argv[0].endswith("/fabpass")
    ctx = main.make_context("fabpass", argv[1:].copy(), resilient_parsing=True)
    command = main.get_command(ctx, argv[1])
    assert command is not None
    option_names = {opt for p in command.params for opt in getattr(p, "opts", [])}
    for arg in argv[2:]:
        if arg.startswith("--"):
            assert arg in option_names, f"{name}: {arg} is not an option of `fabpass {argv[1]}`"
    assert isinstance(command, click.Command)


# Every directive the units use, as spelled in systemd.unit(5), systemd.service(5),
# systemd.exec(5) and systemd.kill(5): the fallback check where systemd-analyze is missing.
KNOWN = {
    "Unit": {"Description", "Documentation", "Wants", "After", "StartLimitIntervalSec"},
    "Service": {"Type", "NotifyAccess", "WatchdogSec", "Restart", "RestartSec", "User", "Group",
                "SupplementaryGroups", "EnvironmentFile", "Environment", "ExecStart",
                "StateDirectory", "StateDirectoryMode", "WorkingDirectory", "KillSignal",
                "TimeoutStopSec", "NoNewPrivileges", "ProtectSystem", "ProtectHome",
                "PrivateTmp", "PrivateDevices", "ProtectKernelTunables", "ProtectControlGroups",
                "RestrictSUIDSGID", "LockPersonality"},
    "Install": {"WantedBy"},
}


@pytest.mark.parametrize("name", ["fabpass-node.service", "fabpass-server.service"])
def test_only_known_directives(name: str) -> None:
    parsed = unit(name)
    assert set(parsed.sections()) == set(KNOWN)
    for section in parsed.sections():
        assert set(parsed[section]) <= KNOWN[section], (name, section)


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        return  # test_only_known_directives covers the spelling without systemd
    paths = []
    for source, target in (("fabpass-node.service", "fabpass-node.service"),
                           ("fabpass-server.service", "fabpass-server.service")):
        text = (UNITS / source).read_text()
        for installed in ("/opt/fabpass/venv/bin/fabpass", "/opt/fabpass/bin/fabpass"):
            text = text.replace(installed, sys.executable)
        (tmp_path / target).write_text(text)
        paths.append(str(tmp_path / target))
    out = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True, text=True,
                         timeout=60, check=False)
    problems = [line for line in (out.stdout + out.stderr).splitlines()
                if "fabpass" in line and "Failed to" not in line]
    assert problems == []
