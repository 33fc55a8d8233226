"""Slugs that become broker identities: the one check every site, machine and node creation calls.

A node's slug is its broker user, and site and machine slugs are topic levels and names people
read in the broker files; one equal to the server's broker user (or another service's) once
minted a superuser (issue 13). `firmware_config.broker_users.check_broker_name` is the pure
rule; this module feeds it the names this server reserves: the default `fabpass-server`, the
user of `FABPASS_MQTT_URL` and the server user stored by `fabpass broker config` (so a server
user chosen once keeps being reserved when the URL later carries none).

`create_site`, `create_machine` and `create_node` (the one place a `Node` row is made, used by
machines and by provisioning) call `identity_slug`, so API, web, CLI and provisioning all get
the same refusal: an `Invalid` naming the field.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from firmware_config.broker_users import (
    SERVER_ROLE,
    BrokerNameError,
    check_broker_name,
    reserved_broker_names,
)
from server.errors import N_, Conflict, Invalid
from server.models import Node, Setting
from server.services.validation import slug_field
from server.settings import settings_from_env

# The settings row where provisioning keeps the server's broker user (see provisioning.py).
SERVER_USER_KEY = "mqtt.server_username"


def reserved_names(db: Session) -> dict[str, str]:
    """Name → owner of every broker user that no slug may take."""
    names = reserved_broker_names(settings_from_env()["MQTT_URL"])
    stored = db.get(Setting, SERVER_USER_KEY)
    if stored is not None and stored.value:
        names.setdefault(stored.value, SERVER_ROLE)
    return names


def identity_slug(db: Session, value: object, *, kind: str, field: str = "slug") -> str:
    """`value` as a slug that is no reserved broker user; else `Invalid` on `field`."""
    slug = slug_field(value, field)
    try:
        check_broker_name(slug, reserved_names(db), kind=kind, field=field)
    except BrokerNameError as exc:
        raise Invalid(N_("%(field)s %(value)r is reserved: it is the broker user of the server "
                         "or of another service"),
                      {field: N_("reserved for a broker user: choose another short code")},
                      {"field": field, "value": slug}) from exc
    return slug


def create_node(db: Session, slug: object, site_id: int, *, field: str = "node") -> Node:
    """A new node row (no credentials yet): the only place nodes are created."""
    slug_ = identity_slug(db, slug, kind="node", field=field)
    if db.scalar(select(Node.id).where(Node.slug == slug_)) is not None:
        raise Conflict(N_("a node with slug %(slug)r exists"), {"slug": slug_})
    node = Node(slug=slug_, site_id=site_id)
    db.add(node)
    db.flush()
    return node


__all__ = ["SERVER_USER_KEY", "create_node", "identity_slug", "reserved_names"]
