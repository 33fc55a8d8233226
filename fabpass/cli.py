"""The one `fabpass` console script; each package contributes its own commands.

Commands are imported only when they run (a lazy click group), so `fabpass node`
on a Pi never loads Flask or SQLAlchemy (about 25 MiB of RSS) and
`fabpass server` never loads gpiozero.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

import click

# command name -> "module:attribute"
COMMANDS: dict[str, str] = {
    "node": "fabpass.cli:node_group",
    "server": "server.cli.run:server",
    "ingest": "server.cli.run:ingest",
    "db": "server.cli.db:db",
    "user": "server.cli.users:user",
    "token": "server.cli.users:token",
    "members": "server.cli.members:members",
    "grant": "server.cli.trainings:grant",
    "revoke": "server.cli.trainings:revoke",
    "report": "server.cli.reports:report",
    "config": "firmware_config.cli:config",
    "broker": "server.cli.provisioning:broker",
    "demo": "fabpass.demo:demo",
    "member": "server.cli.privacy:member",
    "privacy": "server.cli.privacy:privacy",
    "sync": "server.cli.sync:sync",
}

# one-line help shown by `fabpass --help` without importing every command
SUMMARIES: dict[str, str] = {
    "node": "Run a node daemon, or provision / check / revoke a node.",
    "server": "Run the web UI + REST API and the MQTT ingest and access-list publisher.",
    "ingest": "Run the MQTT ingest alone (several workers can share the load).",
    "db": "Database schema (fabpass db upgrade).",
    "user": "Web logins.",
    "token": "REST API tokens.",
    "members": "Members (CSV import).",
    "grant": "Grant a training authorization.",
    "revoke": "Revoke a training authorization.",
    "report": "Usage and funder reports.",
    "config": "Node configuration files.",
    "broker": "Mosquitto password, ACL and listener files.",
    "demo": "Run the whole system on this machine with seeded data.",
    "member": "A member's personal data: export, erase.",
    "privacy": "Retention: pseudonymise old usage detail.",
    "sync": "Synchronise with Fab-manager.",
}


def _load(target: str) -> click.Command:
    module, _, attr = target.partition(":")
    obj = getattr(importlib.import_module(module), attr)
    command: click.Command = obj() if attr == "node_group" else obj
    return command


def node_group() -> click.Command:
    """`fabpass node`: the daemon, with the doctor and the server's provisioning commands."""
    from controller.cli import node
    from firmware_config.cli import doctor
    from server.cli.provisioning import node_revoke, provision

    for command in (provision, doctor, node_revoke):
        if command.name not in node.commands:
            node.add_command(command)
    return node


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        return _load(target) if target else None

    def format_commands(self, ctx: click.Context, formatter: Any) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, SUMMARIES.get(name, "")) for name in sorted(COMMANDS)])


@click.group(cls=LazyGroup)
@click.option("--log-level", default=lambda: os.environ.get("FABPASS_LOG_LEVEL", "INFO"),
              show_default="INFO", help="DEBUG, INFO, WARNING or ERROR")
@click.version_option(package_name="fabpass")
def main(log_level: str) -> None:
    """fabpass: machine access control and usage monitoring for fablabs."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


if __name__ == "__main__":
    main()
