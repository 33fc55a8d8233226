"""Webhooks: signed JSON event payloads, queued and delivered in order with retries (issue 20).

`emit` (called from the ingest and the services, in their transaction) only inserts one
delivery row per subscribed webhook; `deliver_due` (the `WebhookSender` job) posts them. Each
webhook's deliveries go out in the order they were emitted: a failing receiver holds back the
later ones until the earlier one is delivered or given up.

Addresses: `https://` only, except to hosts listed in FABPASS_WEBHOOK_ALLOW_HOSTS; loopback,
link-local, private and other non-public addresses are refused when the webhook is saved AND
when its host is resolved at delivery, and the connection goes to the address that was checked
(a DNS answer that changes between the check and the connection cannot redirect it).

Signature (contract section 6): `X-Fabpass-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(
secret, "<t>.<body>")>`.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.errors import N_, Invalid, NotFound
from server.models import Site, Webhook, WebhookDelivery, utcnow
from server.services.audit import audit

log = logging.getLogger(__name__)

EVENTS = ("session.started", "session.ended", "badge.denied", "node.online", "node.offline",
          "maintenance.due", "booking.created", "booking.cancelled")
MAX_ATTEMPTS = 10
BACKOFF_FIRST_S = 10.0
BACKOFF_MAX_S = 3600.0
TIMEOUT_S = 10.0
USER_AGENT = "fabpass-webhooks/1"


class AddressRefused(ValueError):
    """The URL's host is not a public address and is not allowed by the setting."""


def _public(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (an IP literal resolves to itself)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def checked_address(url: str, allow_hosts: Collection[str], *,
                    resolver: Callable[[str, int], list[str]] = resolve) -> tuple[str, int, str]:
    """(host, port, IP to connect to) for `url`, or AddressRefused naming the reason."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise AddressRefused("the URL has no host")
    allowed = host in {h.lower() for h in allow_hosts}
    if parts.scheme != "https" and not (parts.scheme == "http" and allowed):
        raise AddressRefused("the URL must start with https://")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise AddressRefused("the port is not a number") from None
    try:
        ips = resolver(host, port)
    except OSError as exc:
        raise AddressRefused(f"the host does not resolve ({exc})") from None
    if not ips:
        raise AddressRefused("the host does not resolve")
    if not allowed:
        for ip in ips:
            if not _public(ip):
                raise AddressRefused(f"{host} is a loopback, link-local or private address ({ip})")
    return host, port, ips[0]


def check_url(url: Any, allow_hosts: Collection[str], *,
              resolver: Callable[[str, int], list[str]] = resolve) -> str:
    """The URL if a webhook may be saved with it; Invalid naming `url` otherwise."""
    if not isinstance(url, str) or not url.strip() or len(url) > 2000:
        raise Invalid(N_("%(field)s is required"), {"url": N_("required")}, {"field": "url"})
    url = url.strip()
    try:
        checked_address(url, allow_hosts, resolver=resolver)
    except AddressRefused as exc:
        raise Invalid(N_("url: %(reason)s"), {"url": str(exc)}, {"reason": str(exc)}) from None
    return url


def create_webhook(db: Session, url: Any, secret: Any, events: Any, site_id: int | None, *,
                   allow_hosts: Collection[str], actor: str,
                   resolver: Callable[[str, int], list[str]] = resolve) -> Webhook:
    url = check_url(url, allow_hosts, resolver=resolver)
    if not isinstance(secret, str) or len(secret) < 16 or len(secret) > 200:
        raise Invalid(N_("secret: 16 to 200 characters"), {"secret": "16 to 200 characters"})
    if (not isinstance(events, list) or not events
            or any(not isinstance(e, str) or e not in EVENTS for e in events)):
        raise Invalid(N_("events: a non-empty list of known events"),
                      {"events": "a non-empty list of: " + ", ".join(EVENTS)})
    hook = Webhook(url=url, secret=secret, events=sorted(set(events)), site_id=site_id,
                   active=True)
    db.add(hook)
    db.flush()
    forget_cache()
    audit(db, actor, "webhook.created", "webhook", hook.id,
          {"url": url, "events": hook.events, "site_id": site_id})
    return hook


def get_webhook(db: Session, webhook_id: int) -> Webhook:
    hook = db.get(Webhook, webhook_id)
    if hook is None:
        raise NotFound(N_("webhook %(id)s not found"), params={"id": webhook_id})
    return hook


def delete_webhook(db: Session, hook: Webhook, *, actor: str) -> None:
    audit(db, actor, "webhook.deleted", "webhook", hook.id, {"url": hook.url})
    db.delete(hook)
    forget_cache()


def list_webhooks(db: Session, site_ids: frozenset[int] | None) -> list[Webhook]:
    """Webhooks of these sites (None: all); a manager does not see every-site webhooks."""
    q = select(Webhook).order_by(Webhook.id)
    if site_ids is not None:
        q = q.where(Webhook.site_id.in_(sorted(site_ids)))
    return list(db.scalars(q))


def deliveries(db: Session, webhook_id: int, limit: int = 100) -> list[WebhookDelivery]:
    return list(db.scalars(select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
                           .order_by(WebhookDelivery.id.desc()).limit(limit)))


_HOOKS_TTL_S = 2.0
_hooks_cache: dict[str, Any] = {}


def forget_cache() -> None:
    """Forget the cached webhook list (this process changed a webhook)."""
    _hooks_cache.clear()


def _subscribed(db: Session, event_type: str, site_id: int | None) -> list[int]:
    """Ids of the active webhooks wanting this event. The list of webhooks is cached for
    `_HOOKS_TTL_S` per process: the ingest calls this for every event, and most labs have
    no webhook at all, so the hot path must not query for each event."""
    now = time.monotonic()
    key = str(db.get_bind().engine.url)
    cached = _hooks_cache.get(key)
    if cached is None or now - cached[0] > _HOOKS_TTL_S:
        rows = db.execute(select(Webhook.id, Webhook.events, Webhook.site_id)
                          .where(Webhook.active.is_(True))).all()
        cached = (now, [(r.id, set(r.events or ()), r.site_id) for r in rows])
        _hooks_cache[key] = cached
    return [hid for hid, events, sid in cached[1]
            if event_type in events and (sid is None or sid == site_id)]


def emit(db: Session, event_type: str, site_id: int | None, data: dict[str, Any], *,
         at: datetime | None = None) -> int:
    """Queue `event_type` for every active webhook that wants it (the caller commits)."""
    if event_type not in EVENTS:
        raise ValueError(f"unknown webhook event {event_type!r}")
    hooks = _subscribed(db, event_type, site_id)
    if not hooks:
        return 0
    slug = db.scalar(select(Site.slug).where(Site.id == site_id)) if site_id else None
    at = at or utcnow()
    event_id = str(uuid.uuid4())
    body = json.dumps({"id": event_id, "type": event_type,
                       "at": at.isoformat().replace("+00:00", "Z"), "site": slug, "data": data},
                      separators=(",", ":"), sort_keys=True, default=str)
    for hook_id in hooks:
        db.add(WebhookDelivery(webhook_id=hook_id, event_id=event_id, event_type=event_type,
                               body=body, status="queued", attempts=0, next_attempt_at=utcnow()))
    return len(hooks)


def signature(secret: str, body: str, t: int) -> str:
    mac = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked IP, with the host name for SNI and certificate checks."""

    def __init__(self, host: str, port: int, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._ip = ip

    def connect(self) -> None:
        sock = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._ip = ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)


def post(url: str, ip: str, headers: dict[str, str], body: bytes) -> int:
    """POST `body` to `url`, connecting to `ip`; the HTTP status."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    conn_cls = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
    conn = conn_cls(host, port, ip, TIMEOUT_S)
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read(65536)
        return int(resp.status)
    finally:
        conn.close()


@dataclass
class DeliveryResult:
    delivered: int = 0
    deferred: int = 0
    failed: int = 0
    refused: int = 0


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF_FIRST_S * 2 ** max(attempts - 1, 0), BACKOFF_MAX_S))


def _queued_by_hook(db: Session) -> Iterable[tuple[Webhook, list[WebhookDelivery]]]:
    rows = list(db.scalars(select(WebhookDelivery).where(WebhookDelivery.status == "queued")
                           .order_by(WebhookDelivery.id).limit(1000)))
    by_hook: dict[int, list[WebhookDelivery]] = {}
    for row in rows:
        by_hook.setdefault(row.webhook_id, []).append(row)
    for hook_id, items in by_hook.items():
        hook = db.get(Webhook, hook_id)
        if hook is not None:
            yield hook, items


def deliver_due(sessions: Callable[[], Any], allow_hosts: Collection[str], *,
                now: Callable[[], datetime] = utcnow,
                resolver: Callable[[str, int], list[str]] = resolve,
                sender: Callable[[str, str, dict[str, str], bytes], int] = post) -> DeliveryResult:
    """Post what is due, oldest first per webhook; stop a webhook at its first failure."""
    result = DeliveryResult()
    with sessions() as db:
        for hook, items in _queued_by_hook(db):
            for row in items:
                t = now()
                if row.next_attempt_at > t:
                    break  # an earlier one waits: keep the order
                if not _deliver_one(hook, row, t, allow_hosts, resolver, sender, result):
                    db.commit()
                    break
                db.commit()
    return result


def _deliver_one(hook: Webhook, row: WebhookDelivery, t: datetime, allow_hosts: Collection[str],
                 resolver: Callable[[str, int], list[str]],
                 sender: Callable[[str, str, dict[str, str], bytes], int],
                 result: DeliveryResult) -> bool:
    """One attempt; True when the next delivery of this webhook may go too."""
    row.attempts += 1
    try:
        _host, _port, ip = checked_address(hook.url, allow_hosts, resolver=resolver)
    except AddressRefused as exc:
        row.status, row.last_error = "refused", str(exc)[:500]
        result.refused += 1
        log.warning("webhook %s delivery %s refused: %s", hook.id, row.id, exc)
        return True
    stamp = int(t.timestamp())
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-Fabpass-Signature": signature(hook.secret, row.body, stamp),
               "X-Fabpass-Event": row.event_type, "X-Fabpass-Delivery": row.event_id}
    try:
        status = sender(hook.url, ip, headers, row.body.encode())
        row.last_status = status
        ok = 200 <= status < 300
        error = None if ok else f"HTTP {status}"
    except (OSError, http.client.HTTPException) as exc:
        ok, error = False, str(exc) or type(exc).__name__
    if ok:
        row.status, row.delivered_at, row.last_error = "delivered", t, None
        result.delivered += 1
        return True
    row.last_error = (error or "")[:500]
    if row.attempts >= MAX_ATTEMPTS:
        row.status = "failed"
        result.failed += 1
        return True  # given up: the next ones may go
    row.next_attempt_at = t + _backoff(row.attempts)
    result.deferred += 1
    return False
