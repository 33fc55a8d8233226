"""Provisioning on the server: a node's record, its MQTT credentials and ready files.

Only password hashes are stored (Mosquitto's `$7$` format, in `Node.mqtt_password_hash`
and, for the server's own MQTT user, in the `settings` table), so regenerated broker
files are byte-identical until something really changes. A password is shown once,
when it is created or rotated.

Library functions the web UI reuses: `render_node_config(db, node_slug)`,
`rotate_credentials(db, node_slug)` and `render_broker_files(db)`. The node config text
itself comes from `firmware_config.provisioning` (presets and renderers, no server import).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import select
from sqlalchemy.orm import Session

from firmware_config.mosquitto import (
    NodeAccount,
    hash_password,
    new_password,
    registry_for,
    render_files,
    verify_password,
)
from firmware_config.provisioning import (
    DEFAULT_PRESET,
    ProvisioningError,
    node_config_text,
    preset_text,
    strip_credentials,
)
from protocol.topics import is_slug
from server.errors import ServerError
from server.models import Machine, Node, NodeActuator, Setting, Site, utcnow
from server.services.audit import audit
from server.services.dirty import mark_nodes_dirty
from server.services.identities import SERVER_USER_KEY, create_node, identity_slug
from server.services.machines import create_machine
from server.services.plugs import actuator_section, add_plugs, parse_plug, set_actuator
from server.settings import settings_from_env

SERVER_HASH_KEY = "mqtt.server_password_hash"


DEFAULT_SERVER_USER = "fabpass-server"


ACTOR = "cli"


@dataclass
class Provisioned:
    node: str
    site: str
    machine: str
    username: str
    password: str | None  # set only when created or rotated: show it once
    config: str
    created: bool
    plug_device: str | None = None  # the plug's broker user, when it drives one
    plug_password: str | None = None  # set only when the plug is new, changed or rotated


def _settings(env: dict[str, str] | None = None) -> dict[str, Any]:

    return settings_from_env(env)


def _node_broker_url(settings: dict[str, Any], env: dict[str, str] | None = None) -> str:

    source = os.environ if env is None else env
    return source.get("FABPASS_NODE_MQTT_URL") or strip_credentials(settings["MQTT_URL"])


def provision(db: Session, node_slug: str, machine_slug: str, *, site_slug: str | None = None,
              rotate: bool = False, broker_url: str | None = None, topic_root: str | None = None,
              preset: str = DEFAULT_PRESET, actor: str = ACTOR,
              plug: str | None = None) -> Provisioned:
    """Create or bind `node_slug` to `machine_slug` and make sure it has credentials.

    Idempotent: a second run changes nothing and returns no password, unless `rotate`.
    A revoked node gets fresh credentials. The caller commits. `plug` (`shelly:DEVICE`,
    `tasmota:DEVICE`, `gpio`) sets the node's actuator; None keeps the one it has.
    """

    if not is_slug(node_slug):
        raise ProvisioningError(f"node {node_slug!r} is not a slug (lowercase letters, digits, '-')")
    plug_spec = parse_plug(plug) if plug is not None else None  # fail early, like the preset
    preset_text(preset)  # fail early on a bad preset name
    try:  # before anything is created: a reserved slug leaves no machine behind
        identity_slug(db, node_slug, kind="node", field="node")
    except ServerError as exc:
        raise ProvisioningError(f"cannot create node {node_slug!r}: {exc.message}") from exc
    machine = db.scalar(select(Machine).where(Machine.slug == machine_slug))
    if machine is None:
        if site_slug is None:
            raise ProvisioningError(
                f"machine {machine_slug!r} does not exist: create it in the web UI, or pass "
                "--site SLUG to create it here")
        if db.scalar(select(Site.id).where(Site.slug == site_slug)) is None:
            raise ProvisioningError(f"site {site_slug!r} does not exist")

        try:
            machine = create_machine(db, machine_slug, machine_slug, site_slug,
                                              actor=actor)
        except ServerError as exc:
            raise ProvisioningError(f"cannot create machine {machine_slug!r}: "
                                    f"{exc.message}") from exc
    site = db.get(Site, machine.site_id)
    assert site is not None
    if site_slug is not None and site.slug != site_slug:
        raise ProvisioningError(f"machine {machine_slug!r} is on site {site.slug!r}, "
                                f"not {site_slug!r}")
    node = db.scalar(select(Node).where(Node.slug == node_slug))
    created = node is None
    if node is None:
        try:
            node = create_node(db, node_slug, site.id)
        except ServerError as exc:
            raise ProvisioningError(f"cannot create node {node_slug!r}: {exc.message}") from exc
        audit(db, actor, "node.create", "node", node.id, {"slug": node_slug})
    elif node.site_id != site.id:
        raise ProvisioningError(f"node {node_slug!r} belongs to another site")
    if machine.node_id not in (None, node.id):
        other = db.get(Node, machine.node_id)
        raise ProvisioningError(f"machine {machine_slug!r} is already driven by node "
                                f"{other.slug if other else machine.node_id!r}")
    owner = db.scalar(select(Machine).where(Machine.node_id == node.id))
    if owner is not None and owner.id != machine.id:
        raise ProvisioningError(f"node {node_slug!r} already drives machine {owner.slug!r}")
    if machine.node_id != node.id:
        machine.node_id = node.id
        audit(db, actor, "node.bind", "node", node.id, {"machine": machine_slug})
        mark_nodes_dirty(db, [node.id], "node.bind")
    password: str | None = None
    if node.revoked_at is not None or node.mqtt_password_hash is None or rotate:
        password = new_password()
        node.mqtt_username = node_slug
        node.mqtt_password_hash = hash_password(password)
        node.revoked_at = None
        audit(db, actor, "node.credentials", "node", node.id, {"rotated": not created})
    db.flush()
    settings = _settings()
    root = topic_root or settings["TOPIC_ROOT"]
    plug_password = None
    if plug_spec is not None:
        plug_password = set_actuator(db, node, plug_spec, topic_root=root, rotate=rotate,
                                     actor=actor)
    config = node_config_text(node=node_slug, site=site.slug, machine=machine.slug,
                              broker_url=broker_url or _node_broker_url(settings),
                              username=node.mqtt_username or node_slug, password=password,
                              topic_root=root, preset=preset) + actuator_section(db, node)
    act = db.get(NodeActuator, node.id)
    return Provisioned(node=node_slug, site=site.slug, machine=machine.slug,
                       username=node.mqtt_username or node_slug, password=password,
                       config=config, created=created,
                       plug_device=act.device if act is not None else None,
                       plug_password=plug_password)


def revoke_node(db: Session, node_slug: str) -> bool:
    """Mark a node revoked: its user disappears from the next broker files. The caller commits.

    Returns False when it was already revoked."""

    node = db.scalar(select(Node).where(Node.slug == node_slug))
    if node is None:
        raise ProvisioningError(f"node {node_slug!r} does not exist")
    if node.revoked_at is not None:
        return False
    node.revoked_at = utcnow()
    audit(db, ACTOR, "node.revoke", "node", node.id, {})
    db.flush()
    return True


def rotate_credentials(db: Session, node_slug: str, *, actor: str = ACTOR) -> Provisioned:
    """A new password for a bound node (a web "new password" button); the caller commits and
    then regenerates the broker files. The result's `config` holds the password, once."""

    node = db.scalar(select(Node).where(Node.slug == node_slug))
    if node is None:
        raise ProvisioningError(f"node {node_slug!r} does not exist")
    machine = db.scalar(select(Machine).where(Machine.node_id == node.id))
    if machine is None:
        raise ProvisioningError(f"node {node_slug!r} drives no machine: provision it with "
                                "--machine first")
    return provision(db, node_slug, machine.slug, rotate=True, actor=actor)


def set_plug(db: Session, node_slug: str, plug: str, *, actor: str = ACTOR) -> Provisioned:
    """The web's "set the plug": `provision` of the node's own machine with `plug`; the
    result's `plug_password` is shown once. The caller commits, then regenerates the broker
    files."""

    node = db.scalar(select(Node).where(Node.slug == node_slug))
    if node is None:
        raise ProvisioningError(f"node {node_slug!r} does not exist")
    machine = db.scalar(select(Machine).where(Machine.node_id == node.id))
    if machine is None:
        raise ProvisioningError(f"node {node_slug!r} drives no machine: provision it with "
                                "--machine first")
    return provision(db, node_slug, machine.slug, plug=plug, actor=actor)


def render_node_config(db: Session, node_slug: str, *, password: str | None = None,
                       preset: str = DEFAULT_PRESET, broker_url: str | None = None) -> str:
    """The node's config file for download (no password: it is only stored hashed)."""

    node = db.scalar(select(Node).where(Node.slug == node_slug))
    if node is None:
        raise ProvisioningError(f"node {node_slug!r} does not exist")
    machine = db.scalar(select(Machine).where(Machine.node_id == node.id))
    site = db.get(Site, node.site_id)
    assert site is not None
    settings = _settings()
    return node_config_text(node=node.slug, site=site.slug,
                            machine=machine.slug if machine else node.slug,
                            broker_url=broker_url or _node_broker_url(settings),
                            username=node.mqtt_username or node.slug, password=password,
                            topic_root=settings["TOPIC_ROOT"], preset=preset
                            ) + actuator_section(db, node)


def server_credentials(db: Session, mqtt_url: str, *,
                       generate: bool = True) -> tuple[str, str, str | None]:
    """(username, hash, new password or None) of the server's MQTT user.

    The user and password come from FABPASS_MQTT_URL when it has them; otherwise a
    password is generated once (returned so it can be shown) and only its hash kept.
    """

    parsed = urlparse(mqtt_url)
    user = parsed.username or _get_setting(db, SERVER_USER_KEY) or DEFAULT_SERVER_USER
    if ":" in user or not user.strip() or any(c.isspace() for c in user):
        raise ProvisioningError(f"MQTT user name {user!r} cannot be used in a password file")
    stored_user = _get_setting(db, SERVER_USER_KEY)
    stored = _get_setting(db, SERVER_HASH_KEY) if stored_user == user else None
    new: str | None = None
    if parsed.password is not None:
        if stored is None or not verify_password(stored, parsed.password):
            stored = hash_password(parsed.password)
    elif stored is None:
        if not generate:
            raise ProvisioningError(
                "the server has no MQTT credentials yet: run `fabpass broker config --out DIR` "
                "once (it prints the server's password) or put user:password in FABPASS_MQTT_URL")
        new = new_password()
        stored = hash_password(new)
    for key, value in ((SERVER_USER_KEY, user), (SERVER_HASH_KEY, stored)):
        row = db.get(Setting, key)
        if row is None:
            db.add(Setting(key=key, value=value))
        elif row.value != value:
            row.value = value
    db.flush()
    return user, stored, new


def _get_setting(db: Session, key: str) -> str | None:

    row = db.get(Setting, key)
    return row.value if row else None


def node_accounts(db: Session) -> list[NodeAccount]:
    """Every non-revoked node that has credentials."""

    rows = db.execute(
        select(Node.mqtt_username, Node.mqtt_password_hash, Site.slug, Node.slug)
        .join(Site, Site.id == Node.site_id)
        .where(Node.revoked_at.is_(None), Node.mqtt_password_hash.is_not(None),
               Node.mqtt_username.is_not(None))
        .order_by(Node.mqtt_username)
    ).all()
    return [NodeAccount(username=str(u), password_hash=str(h), site=s, node=n)
            for u, h, s, n in rows]


def broker_files(db: Session, *, mqtt_url: str | None = None, topic_root: str | None = None,
                 install_dir: str = "/etc/mosquitto/fabpass",
                 generate: bool = True) -> tuple[dict[str, str], str | None]:
    """`passwd`, `acl`, `mosquitto.conf` contents, and the server password if just generated.

    May store the server user's hash (the caller commits)."""
    settings = _settings()
    user, server_hash, new = server_credentials(db, mqtt_url or settings["MQTT_URL"],
                                                generate=generate)
    nodes = node_accounts(db)
    root = topic_root or settings["TOPIC_ROOT"]
    users = registry_for(user, server_hash, nodes, root)
    add_plugs(db, users)  # each smart plug its own user and ACL (issue 16)
    return render_files(users, install_dir), new


def render_broker_files(db: Session, **kwargs: Any) -> dict[str, str]:
    """The broker's files for download (see `broker_files`); never generates a password,
    so a web download cannot create a secret nobody sees. The caller commits."""
    files, _ = broker_files(db, generate=False, **kwargs)
    return files
