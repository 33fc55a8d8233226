"""Webhooks: saved only for allowed addresses, delivered signed, in order, with retries, to a
real HTTP receiver on loopback (an allowed host)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from server.models import WebhookDelivery, utcnow
from server.services import webhooks

SECRET = "s3cret-s3cret-s3cret"
EVENTS = ["session.started", "session.ended"]


class Receiver:
    """Plain HTTP on 127.0.0.1; answers `codes` in turn (then 200) and keeps every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.codes: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                code = outer.codes.pop(0) if outer.codes else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def verify(secret: str, header: str, body: bytes) -> bool:
    """What a receiver does (docs/notifications.md)."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    mac = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, parts["v1"])


@pytest.mark.parametrize("url", [
    "http://hooks.example.org/x",          # not https
    "https://127.0.0.1/x",                 # loopback
    "https://[::1]/x",
    "https://10.1.2.3/x",                  # private
    "https://192.168.1.10/x",
    "https://169.254.169.254/latest/",     # link-local (cloud metadata)
    "https://[::ffff:127.0.0.1]/x",        # mapped loopback
    "ftp://example.org/",
])
def test_refused_addresses(api: Any, url: str) -> None:
    r = api("POST", "/webhooks", {"url": url, "secret": SECRET, "events": EVENTS})
    assert r.status_code == 400, r.get_json()
    assert "url" in r.get_json()["error"]["fields"]


def test_bad_events_and_secret(api: Any, api_app: Any) -> None:
    api_app[0].config["WEBHOOK_ALLOW_HOSTS"] = ["127.0.0.1"]
    r = api("POST", "/webhooks", {"url": "http://127.0.0.1:9/x", "secret": SECRET,
                                  "events": ["nope"]})
    assert r.status_code == 400 and "events" in r.get_json()["error"]["fields"]
    r = api("POST", "/webhooks", {"url": "http://127.0.0.1:9/x", "secret": "short",
                                  "events": EVENTS})
    assert r.status_code == 400 and "secret" in r.get_json()["error"]["fields"]


def test_signed_ordered_retried_delivery(api: Any, api_app: Any, seed: Any,
                                         receiver: Receiver) -> None:
    app = api_app[0]
    app.config["WEBHOOK_ALLOW_HOSTS"] = ["127.0.0.1"]
    r = api("POST", "/webhooks", {"url": receiver.url, "secret": SECRET, "events": EVENTS,
                                  "site": "lab"})
    assert r.status_code == 201, r.get_json()
    hook = r.get_json()
    assert hook["site"] == "lab" and "secret" not in hook
    sessions = app.extensions["fabpass.sessionmaker"]
    with sessions() as db:
        for i in range(3):
            webhooks.emit(db, "session.started", seed.lab, {"n": i})
        webhooks.emit(db, "session.started", seed.other, {"n": 99})  # another site: not sent
        webhooks.emit(db, "badge.denied", seed.lab, {"n": 98})  # not subscribed
        db.commit()
    receiver.codes = [500]
    t0 = utcnow()
    first = webhooks.deliver_due(sessions, ["127.0.0.1"], now=lambda: t0)
    assert (first.delivered, first.deferred) == (0, 1)
    assert len(receiver.requests) == 1  # the later ones wait behind the failed one
    t1 = t0 + timedelta(minutes=5)
    second = webhooks.deliver_due(sessions, ["127.0.0.1"], now=lambda: t1)
    assert second.delivered == 3
    assert webhooks.deliver_due(sessions, ["127.0.0.1"], now=lambda: t1).delivered == 0
    bodies = [json.loads(b) for _h, b in receiver.requests]
    assert [b["data"]["n"] for b in bodies] == [0, 0, 1, 2]
    assert bodies[0]["id"] == bodies[1]["id"]  # a retry is the same event
    for headers, body in receiver.requests:
        assert verify(SECRET, headers["x-fabpass-signature"], body)
        assert not verify("wrong-secret-wrong", headers["x-fabpass-signature"], body)
    assert set(bodies[0]) == {"id", "type", "at", "site", "data"}
    assert bodies[0]["type"] == "session.started" and bodies[0]["site"] == "lab"
    stamp = int(receiver.requests[-1][0]["x-fabpass-signature"].split(",")[0][2:])
    assert stamp == int(t1.timestamp())
    log = api("GET", f"/webhooks/{hook['id']}/deliveries").get_json()["items"]
    assert [d["status"] for d in log] == ["delivered"] * 3
    assert max(d["attempts"] for d in log) == 2


def test_dns_rebinding_is_refused_at_delivery(api_app: Any, seed: Any,
                                              receiver: Receiver) -> None:
    app = api_app[0]
    sessions = app.extensions["fabpass.sessionmaker"]
    answers = {"hooks.example.org": ["93.184.216.34"]}
    with sessions() as db:
        webhooks.create_webhook(db, "https://hooks.example.org/x", SECRET, EVENTS, None,
                                allow_hosts=[], actor="test",
                                resolver=lambda h, p: answers[h])
        webhooks.emit(db, "session.ended", seed.lab, {})
        db.commit()
    answers["hooks.example.org"] = ["127.0.0.1"]
    sent: list[str] = []
    result = webhooks.deliver_due(sessions, [], resolver=lambda h, p: answers[h],
                                  sender=lambda url, ip, h, b: sent.append(ip) or 200)
    assert result.refused == 1 and sent == []
    with sessions() as db:
        row = db.query(WebhookDelivery).one()
        assert row.status == "refused" and "127.0.0.1" in (row.last_error or "")


def test_manager_token_sees_only_its_sites(api: Any, api_app: Any, seed: Any) -> None:
    api_app[0].config["WEBHOOK_ALLOW_HOSTS"] = ["127.0.0.1"]
    body = {"url": "http://127.0.0.1:9/x", "secret": SECRET, "events": EVENTS}
    assert api("POST", "/webhooks", body).status_code == 201  # admin: every site
    r = api("POST", "/webhooks", body, token=seed.manager_token)
    assert r.status_code == 201 and r.get_json()["site"] == "lab"
    assert api("POST", "/webhooks", {**body, "site": "other"},
               token=seed.manager_token).status_code == 403
    mine = api("GET", "/webhooks", token=seed.manager_token).get_json()["items"]
    assert [h["site"] for h in mine] == ["lab"]
    all_hooks = api("GET", "/webhooks").get_json()
    assert all_hooks["total"] == 2
    every_site = next(h for h in all_hooks["items"] if h["site"] is None)
    assert api("DELETE", f"/webhooks/{every_site['id']}",
               token=seed.manager_token).status_code == 404
    assert api("DELETE", f"/webhooks/{every_site['id']}").status_code == 204
