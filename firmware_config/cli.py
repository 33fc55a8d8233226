"""Commands for node configuration, provisioning and the broker's security files."""

from __future__ import annotations

import click


@click.group()
def config() -> None:
    """Node configuration files."""


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def config_check(file: str) -> None:
    """Validate a node config: exit 0, or 1 with `FILE:LINE: key: message` lines."""
    raise click.ClickException("not built yet")


@click.group()
def broker() -> None:
    """Mosquitto password, ACL and listener files."""


@click.command()
@click.argument("node_slug")
@click.option("--machine", required=True)
def provision(node_slug: str, machine: str) -> None:
    """Create a node, its credentials and a ready config file."""
    raise click.ClickException("not built yet")


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
def doctor(config_path: str) -> None:
    """Check SPI, reader, relay, broker and clock, in plain words."""
    raise click.ClickException("not built yet")
