"""The one `fabpass` console script; each package contributes its own commands.

Command modules keep their heavy imports inside the command functions so
`fabpass node` on a Pi does not load Flask and `fabpass server` does not load
gpiozero.
"""

from __future__ import annotations

import logging
import os

import click

from controller.cli import node
from fabpass.demo import demo
from firmware_config.cli import broker, config, doctor, node_revoke, provision
from server.cli import db, grant, ingest, members, revoke, server, token, user
from server.privacy_cli import member, privacy
from server.reports_cli import report


@click.group()
@click.option("--log-level", default=lambda: os.environ.get("FABPASS_LOG_LEVEL", "INFO"),
              show_default="INFO", help="DEBUG, INFO, WARNING or ERROR")
@click.version_option(package_name="fabpass")
def main(log_level: str) -> None:
    """fabpass: machine access control and usage monitoring for fablabs."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


node.add_command(provision)
node.add_command(doctor)
node.add_command(node_revoke)
for command in (node, server, ingest, db, user, token, members, grant, revoke, report, config, broker,
                demo, member, privacy):
    main.add_command(command)


if __name__ == "__main__":
    main()
