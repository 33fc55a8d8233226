"""A node's actuator on the server: which smart plug it drives, and that plug's broker identity.

Set at provisioning (`fabpass node provision NODE --machine M --plug shelly:DEVICE`, contract 6
"Actuators"). Why the server keeps it: the plug needs its own broker user and ACL (it may touch
only its own topics, and answer the node's RPC frames), which `fabpass broker config` writes
from the registry (`firmware_config.broker_users.BrokerUsers.add_plug`); and the node config
the server hands out must carry the matching `[actuator]` section. The plug's password is
generated here, shown once, and only its hash is kept (like a node's).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from firmware_config.broker_users import (
    PLUG_TYPES,
    BrokerIdentityError,
    BrokerUsers,
    check_broker_name,
    check_plug_device,
)
from firmware_config.mosquitto import hash_password, new_password
from firmware_config.provisioning import ProvisioningError
from server.models import Node, NodeActuator
from server.services.audit import audit
from server.services.dirty import mark_nodes_dirty
from server.services.identities import reserved_names

DEFAULT_LEASE_S = 60


@dataclass(frozen=True)
class PlugSpec:
    type: str  # "gpio" | "shelly" | "tasmota"
    device: str | None = None


def parse_plug(spec: str) -> PlugSpec:
    """`shelly:DEVICE`, `tasmota:DEVICE`, or `gpio` (back to the relay)."""
    text = spec.strip()
    if text == "gpio":
        return PlugSpec("gpio")
    kind, sep, device = text.partition(":")
    if not sep or kind not in PLUG_TYPES or not device:
        raise ProvisioningError(f"--plug {spec!r}: expected shelly:DEVICE, tasmota:DEVICE "
                                "or gpio")
    return PlugSpec(kind, device)


def _check_device(db: Session, node: Node, spec: PlugSpec, topic_root: str) -> None:
    assert spec.device is not None
    try:
        check_plug_device(spec.device, plug_type=spec.type, topic_root=topic_root)
        check_broker_name(spec.device, reserved_names(db), kind="plug device", field="device")
    except BrokerIdentityError as exc:
        raise ProvisioningError(exc.message) from exc
    folded = spec.device.casefold()
    if db.scalar(select(Node.slug).where(func.lower(Node.slug) == folded)) is not None:
        raise ProvisioningError(f"plug device {spec.device!r} equals a node's slug: each is "
                                "a broker user, choose another device name")
    other = db.scalar(select(Node.slug).join(NodeActuator, NodeActuator.node_id == Node.id)
                      .where(func.lower(NodeActuator.device) == folded, Node.id != node.id))
    if other is not None:
        raise ProvisioningError(f"plug device {spec.device!r} is already driven by node {other!r}")


def set_actuator(db: Session, node: Node, spec: PlugSpec, *, topic_root: str, rotate: bool,
                 actor: str) -> str | None:
    """Record the node's actuator; returns the plug's new password (shown once) when the plug
    is new, changed or `rotate`, else None. The caller commits."""
    row = db.get(NodeActuator, node.id)
    if spec.type == "gpio":
        if row is not None:
            db.delete(row)
            audit(db, actor, "node.actuator", "node", node.id, {"type": "gpio"})
            db.flush()
        return None
    _check_device(db, node, spec, topic_root)
    changed = row is None or row.type != spec.type or row.device != spec.device
    if row is None:
        row = NodeActuator(node_id=node.id, type=spec.type, device=spec.device, channel=0,
                           lease_s=DEFAULT_LEASE_S)
        db.add(row)
    row.type, row.device = spec.type, spec.device
    password: str | None = None
    if changed or rotate or row.mqtt_password_hash is None:
        password = new_password()
        row.mqtt_password_hash = hash_password(password)
    if changed:
        audit(db, actor, "node.actuator", "node", node.id,
              {"type": spec.type, "device": spec.device})
        mark_nodes_dirty(db, [node.id], "node.actuator")
    db.flush()
    return password


def actuator_section(db: Session, node: Node) -> str:
    """The node config's `[actuator]` section ('' for the relay)."""
    row = db.get(NodeActuator, node.id)
    if row is None or row.type == "gpio":
        return ""
    return (f"\n# smart plug (docs/actuators.md); with it, [gpio] relay is ignored\n"
            f'[actuator]\ntype = "{row.type}"\ndevice = "{row.device}"\n'
            f"channel = {row.channel}\nlease_s = {row.lease_s}\n")


def add_plugs(db: Session, users: BrokerUsers) -> None:
    """Every plug of a node that has a broker user, into the registry (clashes raise)."""
    rows = db.execute(select(Node.slug, NodeActuator.type, NodeActuator.device,
                             NodeActuator.mqtt_password_hash)
                      .join(NodeActuator, NodeActuator.node_id == Node.id)
                      .where(Node.revoked_at.is_(None), NodeActuator.type != "gpio",
                             NodeActuator.mqtt_password_hash.is_not(None))
                      .order_by(Node.slug)).all()
    node_users = {u.node for u in users.nodes()}
    for slug, kind, device, pw_hash in rows:
        plug_type = next((t for t in PLUG_TYPES if t == kind), None)
        if slug in node_users and device and plug_type is not None and pw_hash:
            users.add_plug(slug, type=plug_type, device=device, password_hash=pw_hash)


def plug_specs(db: Session, node_ids: list[int]) -> dict[int, str]:
    """`type:device` of the nodes that drive a plug (the nodes page shows them)."""
    if not node_ids:
        return {}
    rows = db.execute(select(NodeActuator.node_id, NodeActuator.type, NodeActuator.device)
                      .where(NodeActuator.node_id.in_(node_ids))).all()
    return {r.node_id: f"{r.type}:{r.device}" for r in rows if r.type != "gpio"}
