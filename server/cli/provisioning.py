"""`fabpass broker config`, `fabpass node provision` and `fabpass node revoke`.

They write server rows (a node's record and credentials), so they live with the server; the
node config text comes from `firmware_config.provisioning`. Heavy imports stay inside the
functions (the lazy `fabpass` group loads this module for `fabpass node --help` too).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from server.cli.support import database_session


def _database() -> Any:
    """A session on the server's database (FABPASS_DATABASE_URL), committed on success."""
    return database_session(commit=True)


def _write_private(path: Path, text: str) -> bool:
    """Write `text` readable by its owner only; False (and untouched) if already identical."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return True


@click.group()
def broker() -> None:
    """Mosquitto password, ACL and listener files."""


@broker.command("config")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="directory to write passwd, acl and mosquitto.conf into")
@click.option("--install-dir", default="/etc/mosquitto/fabpass", show_default=True,
              help="where passwd and acl will live on the broker (named in mosquitto.conf)")
@click.option("--mqtt-url", default=None,
              help="the server's broker URL with user:password (default FABPASS_MQTT_URL)")
def broker_config(out_dir: str, install_dir: str, mqtt_url: str | None) -> None:
    """Write the broker's passwd, acl and mosquitto.conf from the database.

    Every non-revoked node gets a user that may publish only its own status/event and
    read only its own acl/ack/cmd; the server's user does the server's job; anonymous
    clients are refused. Re-running with no change writes byte-identical files.
    """
    from firmware_config.broker_users import BrokerIdentityError
    from firmware_config.provisioning import ProvisioningError
    from server.services.provisioning import broker_files

    try:
        with _database() as db:
            files, new_password = broker_files(db, mqtt_url=mqtt_url, install_dir=install_dir)
    except (ProvisioningError, BrokerIdentityError) as exc:
        # a clash writes nothing: the broker keeps the files it has
        raise click.ClickException(exc.message) from exc
    out = Path(out_dir)
    for name, text in files.items():
        changed = _write_private(out / name, text)
        click.echo(f"{out / name}: {'written' if changed else 'unchanged'}")
    if new_password is not None:
        click.echo("The server's MQTT password was generated (shown once). Run the server with\n"
                   f"  FABPASS_MQTT_URL=mqtt://{files['passwd'].split(':', 1)[0]}:{new_password}"
                   "@127.0.0.1:1883")


@click.command()
@click.argument("node_slug")
@click.option("--machine", required=True, help="the slug of the machine this node drives")
@click.option("--site", "site_slug", default=None,
              help="the machine's site (creates the machine if it does not exist)")
@click.option("--out", "out_file", default=None, type=click.Path(dir_okay=False),
              help="write the node config there (mode 600) instead of stdout")
@click.option("--rotate", is_flag=True, help="generate a new password even if one exists")
@click.option("--preset", default=None, help="wiring preset (default mfrc522-relay-rgb-buzzer)")
@click.option("--broker-url", default=None,
              help="the URL nodes use to reach the broker (default FABPASS_NODE_MQTT_URL, "
                   "else FABPASS_MQTT_URL without its credentials)")
@click.option("--plug", default=None, metavar="shelly:DEVICE|tasmota:DEVICE|gpio",
              help="a smart plug switches the machine (its own broker user and password); "
                   "gpio: back to the relay; default: keep what the node has")
def provision(node_slug: str, machine: str, site_slug: str | None, out_file: str | None,
              rotate: bool, preset: str | None, broker_url: str | None,
              plug: str | None) -> None:
    """Create a node, its credentials and a ready config file.

    Running it again changes nothing (no new password) unless --rotate. Afterwards run
    `fabpass broker config --out DIR` so the broker knows the node.
    """
    from firmware_config.provisioning import DEFAULT_PRESET, ProvisioningError
    from server.services.provisioning import provision as do_provision

    try:
        with _database() as db:
            result = do_provision(db, node_slug, machine, site_slug=site_slug, rotate=rotate,
                                  broker_url=broker_url, preset=preset or DEFAULT_PRESET,
                                  plug=plug)
    except ProvisioningError as exc:
        raise click.ClickException(exc.message) from exc
    if out_file:
        _write_private(Path(out_file), result.config)
        click.echo(f"{out_file}: node config for {result.node} (machine {result.machine})",
                   err=True)
    else:
        click.echo(result.config, nl=False)
    if result.password is not None:
        click.echo(f"New MQTT password for {result.username} (shown once, it is in the config "
                   "above/in the file). Now run `fabpass broker config --out DIR`.", err=True)
    else:
        click.echo(f"{result.node}: credentials unchanged (use --rotate for a new password).",
                   err=True)
    if result.plug_password is not None:
        click.echo(f"Plug {result.plug_device}: MQTT user {result.plug_device}, password "
                   f"{result.plug_password} (shown once): enter them in the plug's MQTT "
                   "settings, then run `fabpass broker config --out DIR`.", err=True)


@click.command("revoke")
@click.argument("node_slug")
def node_revoke(node_slug: str) -> None:
    """Revoke a node's broker credentials (then regenerate the broker files)."""
    from firmware_config.provisioning import ProvisioningError
    from server.services.provisioning import revoke_node

    try:
        with _database() as db:
            changed = revoke_node(db, node_slug)
    except ProvisioningError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"{node_slug}: {'revoked' if changed else 'already revoked'}; run "
               "`fabpass broker config --out DIR` and reload Mosquitto to lock it out.")
