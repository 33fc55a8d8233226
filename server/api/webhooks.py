"""`/api/v1/webhooks`: receivers of signed event payloads (contract section 6).

A manager token creates webhooks for its own sites only (with `site`, or its only site); an
admin token may also create one for every site (no `site`). The secret is never shown back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import current_app, jsonify

from server import auth, services
from server.api import ApiError, bp
from server.api.support import actor, created, json_body, token_scope
from server.app import get_db
from server.errors import NotFound
from server.services import webhooks

if TYPE_CHECKING:
    from server.models import Webhook, WebhookDelivery


def webhook_json(h: Webhook) -> dict[str, Any]:
    site = h.site_id
    return {"id": h.id, "url": h.url, "events": list(h.events), "active": h.active,
            "site": _site_slug(site), "created_at": h.created_at.isoformat()}


def delivery_json(d: WebhookDelivery) -> dict[str, Any]:
    return {"id": d.id, "event_id": d.event_id, "type": d.event_type, "status": d.status,
            "attempts": d.attempts, "last_status": d.last_status, "last_error": d.last_error,
            "created_at": d.created_at.isoformat(),
            "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None}


def _site_slug(site_id: int | None) -> str | None:
    if site_id is None:
        return None
    try:
        return services.get_site(get_db(), site_id).slug
    except NotFound:
        return None


def _site_id(slug: Any) -> int | None:
    scope = token_scope()
    if slug is None:
        if scope is None:
            return None
        if len(scope) == 1:
            return next(iter(scope))
        raise ApiError(400, "choose the webhook's site", {"site": "one of this token's sites"})
    if not isinstance(slug, str):
        raise ApiError(400, "site must be a site slug", {"site": "a site slug"})
    site = services.get_site_by_slug(get_db(), slug, "site")
    if not auth.can_manage_site(auth.me(), site.id):
        raise ApiError(403, f"site {slug!r} is outside this token's sites")
    return site.id


def _own(webhook_id: int) -> Webhook:
    hook = webhooks.get_webhook(get_db(), webhook_id)
    scope = token_scope()
    if scope is not None and hook.site_id not in scope:
        raise ApiError(404, f"webhook {webhook_id} not found")
    return hook


@bp.post("/webhooks")
def create_webhook() -> Any:
    b = json_body(("url", "secret", "events", "site"))
    db = get_db()
    hook = webhooks.create_webhook(
        db, b.get("url"), b.get("secret"), b.get("events"), _site_id(b.get("site")),
        allow_hosts=current_app.config.get("WEBHOOK_ALLOW_HOSTS", []), actor=actor())
    db.commit()
    return created(webhook_json(hook))


@bp.get("/webhooks")
def list_webhooks() -> Any:
    items = webhooks.list_webhooks(get_db(), token_scope())
    return jsonify({"items": [webhook_json(h) for h in items], "total": len(items), "page": 1,
                    "per_page": max(len(items), 1)})


@bp.get("/webhooks/<int:webhook_id>/deliveries")
def list_deliveries(webhook_id: int) -> Any:
    hook = _own(webhook_id)
    items = webhooks.deliveries(get_db(), hook.id)
    return jsonify({"items": [delivery_json(d) for d in items], "total": len(items), "page": 1,
                    "per_page": max(len(items), 1)})


@bp.delete("/webhooks/<int:webhook_id>")
def delete_webhook(webhook_id: int) -> Any:
    db = get_db()
    webhooks.delete_webhook(db, _own(webhook_id), actor=actor())
    db.commit()
    return "", 204
