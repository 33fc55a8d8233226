"""The ingest queues webhook events for stored node events and online/offline changes, once."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from server_helpers import T0, ended, ev_in, event, incoming, started, status
from sqlalchemy import select

from server.models import WebhookDelivery
from server.services import webhooks


def test_events_and_node_changes_are_queued_once(db, lab, ingest) -> None:  # type: ignore[no-untyped-def]
    webhooks.create_webhook(db, "https://hooks.example.org/x", "s" * 20,
                            list(webhooks.EVENTS), None, allow_hosts=["hooks.example.org"],
                            actor="test", resolver=lambda h, p: ["203.0.113.5"])
    db.commit()
    sid = str(uuid.uuid4())
    evs = [started(sid), ended(sid, T0, 60.0, 50.0),
           event("badge.denied", {"uid": "04DEAD01", "reason": "unknown_badge"})]
    ingest.handle_batch([ev_in(e) for e in evs])
    ingest.handle_batch([ev_in(e) for e in evs])  # duplicates: nothing more
    ingest.handle_batch([incoming("fabpass/v1/lab/laser-1/status", status())])
    off = json.loads(status())
    off["online"] = False
    ingest.handle_batch([incoming("fabpass/v1/lab/laser-1/status", json.dumps(off).encode())])
    ingest.handle_batch([incoming("fabpass/v1/lab/laser-1/status", json.dumps(off).encode())])
    ingest.handle_batch([incoming("fabpass/v1/lab/laser-1/status",
                                  status(ts=datetime.now(UTC)))])
    db.expire_all()
    rows = list(db.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))
    types = [r.event_type for r in rows]
    assert types[:3] == ["session.started", "session.ended", "badge.denied"]
    assert types[3:] == ["node.online", "node.offline", "node.online"]
    body = json.loads(rows[1].body)
    assert body["site"] == "lab" and body["data"]["session"] == sid
    assert body["data"]["machine"] == "laser-1"
