"""MQTT topic builders and parsers: `{root}/v1/{site}/{node}/{kind}`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from protocol.errors import ProtocolError

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")  # \Z, not $: "lab\n" is no slug
KINDS = ("status", "event", "acl", "ack", "cmd")
Kind = Literal["status", "event", "acl", "ack", "cmd"]


def is_slug(text: object) -> bool:
    return isinstance(text, str) and bool(SLUG.match(text))


def check_slug(text: str, what: str = "slug") -> str:
    if not is_slug(text):
        raise ProtocolError(
            f"{what} {text!r} is not a slug (lowercase letters, digits and '-', 1-63 characters)"
        )
    return text


@dataclass(frozen=True)
class TopicParts:
    site: str
    node: str
    kind: str


class Topics:
    """Topic names under one root (`fabpass` by default)."""

    def __init__(self, root: str = "fabpass") -> None:
        self.root = root.rstrip("/")

    def topic(self, site: str, node: str, kind: Kind) -> str:
        return f"{self.root}/v1/{check_slug(site, 'site')}/{check_slug(node, 'node')}/{kind}"

    def status(self, site: str, node: str) -> str:
        return self.topic(site, node, "status")

    def event(self, site: str, node: str) -> str:
        return self.topic(site, node, "event")

    def acl(self, site: str, node: str) -> str:
        return self.topic(site, node, "acl")

    def ack(self, site: str, node: str) -> str:
        return self.topic(site, node, "ack")

    def cmd(self, site: str, node: str) -> str:
        return self.topic(site, node, "cmd")

    def wildcard(self, kind: Kind) -> str:
        """Every node's topic of one kind, e.g. `fabpass/v1/+/+/event`."""
        return f"{self.root}/v1/+/+/{kind}"

    def parse(self, topic: str) -> TopicParts:
        prefix = f"{self.root}/v1/"
        if not topic.startswith(prefix):
            raise ProtocolError(f"topic {topic!r} is not under {prefix!r}")
        parts = topic[len(prefix):].split("/")
        if len(parts) != 3 or parts[2] not in KINDS:
            raise ProtocolError(f"topic {topic!r} is not {prefix}{{site}}/{{node}}/{{kind}}")
        site, node, kind = parts
        check_slug(site, "site")
        check_slug(node, "node")
        return TopicParts(site, node, kind)
