"""What the ingest tells the notification side: one call per stored event or node status.

The ingest handlers call `on_event` and `on_status` (one line each); this module turns them
into webhook events (`server.services.webhooks.emit`) and, for a session that ended, into the
"tell me when it is free" notices. Nothing here does network I/O: deliveries are queued in the
same transaction and sent by the background jobs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy.orm import Session

from protocol import Event as EventMsg
from server.models import Node
from server.services import notices, webhooks

WEBHOOK_TYPES = {"session.started", "session.ended", "badge.denied"}
# the base of links in mails written by the ingest (set from FABPASS_PUBLIC_URL at import)
PUBLIC_URL = [os.environ.get("FABPASS_PUBLIC_URL", "").rstrip("/")]


def _event_data(node: Node, msg: EventMsg) -> dict[str, Any]:
    data: dict[str, Any] = {"node": node.slug,
                            "machine": node.machine.slug if node.machine else None}
    for key in ("session", "uid", "member", "reason", "started", "ended", "duration_s",
                "active_s", "until", "energy_wh"):
        if key in msg.data:
            data[key] = msg.data[key]
    return data


def on_event(db: Session, node: Node, msg: EventMsg,
             watched: Callable[[], Collection[int]] | None = None) -> None:
    """A node event was stored (not a duplicate). `watched`, from the ingest's batch, gives
    the machines with open watch requests (looked up once per batch)."""
    if msg.type in WEBHOOK_TYPES:
        webhooks.emit(db, msg.type, node.site_id, _event_data(node, msg), at=msg.ts)
    if msg.type == "session.ended":
        notices.machine_freed(db, node.machine.id if node.machine else None,
                              public_url=PUBLIC_URL[0],
                              watched=watched() if watched is not None else None)


def on_status(db: Session, node: Node, online: bool) -> None:
    """A node status arrived; `node.online` still holds the previous value."""
    if bool(node.online) != online:
        webhooks.emit(db, "node.online" if online else "node.offline", node.site_id,
                      {"node": node.slug, "machine": node.machine.slug if node.machine else None})
