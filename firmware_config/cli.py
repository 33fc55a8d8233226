"""Commands for node configuration files: `fabpass config check` and `fabpass node doctor`.

Provisioning and the broker files write server rows: `server.cli.provisioning`.

Output meant for people (results, one-time passwords) goes to stdout through
click.echo; diagnostics go through logging.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from firmware_config.node_config import ConfigError


@click.group()
def config() -> None:
    """Node configuration files."""


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def config_check(file: str) -> None:
    """Validate a node config: exit 0, or 1 with `FILE:LINE: key: message` lines."""
    from firmware_config.loader import validate_text

    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        click.echo(f"{file}:0: file: cannot be read: {exc}")
        sys.exit(1)
    cfg, report = validate_text(text, file)
    for note in report.notes:
        click.echo(note, err=True)
    if cfg is None:
        for problem in report.problems:
            click.echo(problem)
        sys.exit(1)
    click.echo(f"{file}: ok")


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--yes", is_flag=True, help="switch the relay for the click test without asking")
@click.option("--no-relay", is_flag=True, help="skip the relay click test")
@click.option("--timeout", default=5.0, show_default=True, help="broker timeout in seconds")
def doctor(config_path: str, yes: bool, no_relay: bool, timeout: float) -> None:
    """Check SPI, reader, relay, broker and clock, in plain words."""
    from firmware_config.doctor import Doctor

    try:
        from firmware_config.loader import load_node_config

        cfg = load_node_config(config_path)
    except ConfigError as exc:
        click.echo("✗ config: the file has problems:")
        for problem in exc.problems:
            click.echo(f"    {problem}")
        click.echo("    hint: fix these lines, then run `fabpass config check FILE`")
        sys.exit(1)
    click.echo(f"✓ config: {config_path} is valid")
    doc = Doctor(cfg, confirm=None if yes else _confirm, relay=not no_relay, timeout=timeout)
    ok = doc.run(click.echo)
    sys.exit(0 if ok else 1)


def _confirm(question: str) -> bool:
    return click.confirm(question, default=False)
