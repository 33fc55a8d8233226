"""One registry of the broker's users, from which `passwd` and `acl` are both generated.

Mosquitto reads a password file with one user twice without complaint, and an ACL file
whose `user` blocks repeat a name merges their rights: a node slugged like the server's
user got the server's rights (issue 13). So every user goes through `BrokerUsers`, which
refuses a second entry with the same name (compared case-insensitively, so two names a
person cannot tell apart never coexist) and names both owners in the error.

Names that belong to services (the server's broker user, and any other service user the
files hold) are *reserved*: `check_broker_name` is the pure check the server runs when a
node, machine or site is created, so such a slug is refused at the door, whichever path
(API, web, CLI) creates it; the registry is the last line when an old row slipped through.

Smart plugs (contract section 6, "Actuators") get their own user: the plug's device name
(Shelly's topic prefix, Tasmota's `%topic%`), which is also a topic level, so it is
validated here against wildcards, separators and other users' topic namespaces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlparse

from firmware_config.node_config import ConfigError

DEFAULT_SERVER_USER = "fabpass-server"
SERVER_ROLE = "the server's broker user"
PlugType = Literal["shelly", "tasmota"]
PLUG_TYPES: tuple[PlugType, ...] = ("shelly", "tasmota")
# Top-level topic names a Shelly `{device}/#` must not take over: Tasmota's three prefixes
# (every Tasmota plug's commands and states live there) and Shelly Gen1's namespace.
_FOREIGN_ROOTS = ("cmnd", "stat", "tele", "shellies")
# A device name is one topic level and one passwd/ACL token: no `/`, `+`, `#`, `$`, `:`,
# whitespace or control characters; it starts with a letter or digit.
_DEVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")


class BrokerIdentityError(ConfigError, ValueError):
    """A broker name that cannot be used; `field` names the input it came from, `message`
    is one English sentence (a ConfigError so the CLI reports it like a config problem, a
    ValueError so the server maps it to a 400 on `field`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__([message])
        self.field = field
        self.message = message


class BrokerNameError(BrokerIdentityError):
    """A slug or a plug device name that may not become (part of) a broker identity."""


class BrokerUserClash(BrokerIdentityError):
    """Two owners want the same broker user: the files would hold it twice."""


def server_broker_user(mqtt_url: str | None, default: str = DEFAULT_SERVER_USER) -> str:
    """The server's broker user: the user of `mqtt_url` (FABPASS_MQTT_URL), else `default`."""
    user = urlparse(mqtt_url).username if mqtt_url else None
    return user or default


def reserved_broker_names(mqtt_url: str | None = None, *,
                          services: Mapping[str, str] | None = None) -> dict[str, str]:
    """Name → owner of every service user: the server's user of `mqtt_url`, the default
    `fabpass-server` (so switching to it later can never collide) and `services`."""
    names = {DEFAULT_SERVER_USER: SERVER_ROLE, server_broker_user(mqtt_url): SERVER_ROLE}
    names.update(services or {})
    return names


def check_broker_name(slug: str, reserved: Mapping[str, str] | Iterable[str], *,
                      kind: str = "node", field: str = "slug") -> str:
    """Refuse a node, machine or site slug equal to a reserved broker name; return `slug`.

    Call it wherever one is created or renamed (API, web, CLI). `reserved` comes from
    `reserved_broker_names` (a plain list of names works too). The error names the field:
    "node slug 'fabpass-server' equals the server's broker user"."""
    owners = reserved if isinstance(reserved, Mapping) else {n: "a service's broker user"
                                                               for n in reserved}
    folded = slug.casefold()
    for name, owner in owners.items():
        if name.casefold() == folded:
            raise BrokerNameError(field, f"{kind} slug {slug!r} equals {owner} ({name!r}): "
                                         "choose another slug")
    return slug


def check_plug_device(device: str, *, plug_type: str = "shelly", topic_root: str = "fabpass",
                      field: str = "device") -> str:
    """Refuse a plug device name that is not one plain topic level, or whose topics would
    cover someone else's (a Shelly named like the topic root would own `fabpass/#`)."""
    if plug_type not in PLUG_TYPES:
        raise BrokerNameError("type", f"plug type {plug_type!r} is not one of "
                                      + ", ".join(PLUG_TYPES))
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise BrokerNameError(field, f"plug device {device!r} is not a plain topic level "
                                     "(letters, digits, '_', '.', '-', 1-64 characters, "
                                     "no '/', '+', '#', '$' or spaces)")
    if plug_type == "shelly":
        taken = (topic_root.split("/", 1)[0], *_FOREIGN_ROOTS)
        if device.casefold() in (t.casefold() for t in taken):
            raise BrokerNameError(field, f"shelly plug device {device!r} would own the topics "
                                         f"{device}/#, which belong to others")
    return device


@dataclass(frozen=True)
class ServiceUser:
    name: str
    password_hash: str
    role: str
    rules: tuple[str, ...] = ()  # ACL lines; empty for the server (see mosquitto.acl_text)
    is_server: bool = False


@dataclass(frozen=True)
class NodeUser:
    name: str
    password_hash: str
    site: str
    node: str


@dataclass(frozen=True)
class PlugUser:
    name: str  # = the device name
    password_hash: str
    type: PlugType
    site: str
    node: str


BrokerUser = ServiceUser | NodeUser | PlugUser


def owner_of(user: BrokerUser) -> str:
    """How an error names who holds `user`."""
    if isinstance(user, ServiceUser):
        return user.role
    if isinstance(user, NodeUser):
        return (f"node slug {user.node!r}" if user.name == user.node
                else f"broker user {user.name!r} of node {user.node!r}")
    return f"{user.type} plug device {user.name!r} of node {user.node!r}"


@dataclass
class BrokerUsers:
    """Every user of the broker files, at most once; render with `mosquitto.render_files`.

    Order of calls does not matter for the output (each kind is written sorted by name)."""

    topic_root: str = "fabpass"
    _users: dict[str, BrokerUser] = field(default_factory=dict)

    def _add(self, user: BrokerUser) -> None:
        if not _USER.fullmatch(user.name):
            raise BrokerNameError("username", f"broker user {user.name!r} cannot be written to "
                                              "a password file (letters, digits, '_.@-')")
        key = user.name.casefold()
        existing = self._users.get(key)
        if existing is not None:
            raise BrokerUserClash("username", f"{owner_of(user)} equals {owner_of(existing)} "
                                              f"({existing.name!r}): the broker files would "
                                              "hold that user twice")
        self._users[key] = user

    def add_server(self, name: str, password_hash: str) -> None:
        """The fabpass server: reads every node's status/events, publishes lists, acks, cmds."""
        self._add(ServiceUser(name, password_hash, SERVER_ROLE, is_server=True))

    def add_service(self, name: str, password_hash: str, *, role: str,
                    rules: Iterable[str]) -> None:
        """Another service user (e.g. a monitoring probe) with its own ACL lines
        (`topic read|write|readwrite TOPIC`), which reserve its name like the server's."""
        lines = tuple(rules)
        for line in lines:
            parts = line.split(" ")
            if len(parts) != 3 or parts[0] != "topic" or parts[1] not in (
                    "read", "write", "readwrite") or not parts[2]:
                raise BrokerNameError("rules", f"ACL line {line!r} of {role} is not "
                                               "`topic read|write|readwrite TOPIC`")
        self._add(ServiceUser(name, password_hash, role, lines))

    def add_node(self, name: str, password_hash: str, *, site: str, node: str) -> None:
        self._add(NodeUser(name, password_hash, site, node))

    def add_plug(self, node: str, *, type: PlugType, device: str, password_hash: str) -> None:
        """The smart plug driven by `node` (added before): its user is `device`. One plug
        per node, since the node's `.../plug/rpc` answers topic is writable by its plug."""
        check_plug_device(device, plug_type=type, topic_root=self.topic_root)
        owner = next((u for u in self._users.values()
                      if isinstance(u, NodeUser) and u.node == node), None)
        if owner is None:
            raise BrokerNameError("node", f"plug {device!r}: node {node!r} has no broker user")
        other = next((u for u in self._users.values()
                      if isinstance(u, PlugUser) and u.node == node), None)
        if other is not None:
            raise BrokerUserClash("node", f"node {node!r} already drives plug {other.name!r}")
        self._add(PlugUser(device, password_hash, type, owner.site, node))

    def reserved(self) -> dict[str, str]:
        """Name → owner of the service users (what `check_broker_name` must refuse)."""
        return {u.name: u.role for u in self._users.values() if isinstance(u, ServiceUser)}

    def taken(self) -> dict[str, str]:
        """Name → owner of every user: what a new node slug or plug device must not equal
        (pass it to `check_broker_name` before saving)."""
        return {u.name: owner_of(u) for u in self._users.values()}

    def services(self) -> list[ServiceUser]:
        """Service users, the server first."""
        found = [u for u in self._users.values() if isinstance(u, ServiceUser)]
        return sorted(found, key=lambda u: (not u.is_server, u.name))

    def nodes(self) -> list[NodeUser]:
        return sorted((u for u in self._users.values() if isinstance(u, NodeUser)),
                      key=lambda u: u.name)

    def plugs(self) -> list[PlugUser]:
        return sorted((u for u in self._users.values() if isinstance(u, PlugUser)),
                      key=lambda u: u.name)

    def plug_of(self, node: str) -> PlugUser | None:
        return next((p for p in self.plugs() if p.node == node), None)
