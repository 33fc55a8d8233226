"""`fabpass node`: the node daemon (provisioning and doctor sub-commands come from firmware_config)."""

from __future__ import annotations

import click


@click.group(invoke_without_command=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="the node's TOML config file")
@click.option("--simulate", is_flag=True,
              help="mock GPIO and a simulated reader driven by lines on stdin")
@click.pass_context
def node(ctx: click.Context, config_path: str | None, simulate: bool) -> None:
    """Run a node daemon (or one of the sub-commands below)."""
    if ctx.invoked_subcommand is not None:
        return
    if not config_path:
        raise click.UsageError("--config FILE is required")
    raise click.ClickException("the node daemon is not built yet")
