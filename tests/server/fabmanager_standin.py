"""A local stand-in of Fab-manager's Open API v1, built from its documented shapes
(app/views/open_api/v1 and the apipie docs of sleede/fab-manager), headers included.

Loopback only. `users` and `user_trainings` page only when `page` is given, `reservations`
always (default 20 per page), `trainings` and `machines` never; pages carry `Link`, `Total`
and `Per-Page`. A bad key answers 401 `{"errors": ["Bad credentials"]}`. `fault` makes it
misbehave: "500", "slow" (answers after `slow_s`), "malformed" (a user without `email`),
"unknown_type" (a reservation of a reservable_type Fab-manager does not have).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PAGED_WHEN_ASKED = {"users", "user_trainings"}
ALWAYS_PAGED = {"reservations"}
NEVER_PAGED = {"trainings", "machines"}
STAMP = "2026-11-01T10:00:00.000+01:00"


def user(uid: int, email: str, first: str, last: str) -> dict[str, Any]:
    return {"id": uid, "email": email, "created_at": STAMP, "external_id": None,
            "full_name": f"{first} {last}", "first_name": first, "last_name": last,
            "gender": "woman", "organization": False, "address": None,
            "group": {"id": 1, "name": "standard", "slug": "standard"}}


def named(nid: int, name: str, slug: str) -> dict[str, Any]:
    return {"id": nid, "name": name, "slug": slug, "disabled": None, "updated_at": STAMP,
            "created_at": STAMP}


def user_training(utid: int, user_id: int, training_id: int) -> dict[str, Any]:
    return {"id": utid, "user_id": user_id, "training_id": training_id, "updated_at": STAMP,
            "created_at": STAMP}


def reservation(rid: int, user_id: int, machine: dict[str, Any], slots: list[tuple[str, str]],
                *, canceled: set[int] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
    return {"id": rid, "reservable_id": machine["id"], "reservable_type": "Machine",
            "updated_at": STAMP, "created_at": STAMP, "user_id": user_id,
            "reservable": machine,
            "reserved_slots": [{"canceled_at": STAMP if i in canceled else None,
                                "availability_id": 100 + i, "start_at": s, "end_at": e}
                               for i, (s, e) in enumerate(slots)]}


class FabmanagerStandIn:
    def __init__(self, token: str = "fm-secret-key") -> None:
        self.token = token
        self.data: dict[str, list[dict[str, Any]]] = {
            "users": [], "trainings": [], "user_trainings": [], "machines": [],
            "reservations": []}
        self.fault: str | None = None
        self.slow_s = 2.0
        self.max_per_page = 2  # small, so that every list takes several pages
        self.requests: list[str] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                stand_in.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FabmanagerStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: Any,
              headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(raw)

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(h.path)
        self.requests.append(h.path)
        if h.headers.get("Authorization") != f"Token token={self.token}":
            return self._send(h, 401, {"errors": ["Bad credentials"]})
        resource = parts.path.removeprefix("/open_api/v1/")
        if resource not in self.data:
            return self._send(h, 404, {"error": "not found"})
        if self.fault == "500":
            return self._send(h, 500, {"error": "Internal Server Error"})
        if self.fault == "slow":
            time.sleep(self.slow_s)
        query = dict(urllib.parse.parse_qsl(parts.query))
        items = [dict(i) for i in self.data[resource]]
        if resource == "reservations" and "reservable_type" in query:
            items = [i for i in items if i["reservable_type"] == query["reservable_type"]]
        if self.fault == "malformed" and resource == "users" and items:
            del items[-1]["email"]
        if self.fault == "unknown_type" and resource == "reservations" and items:
            items[0]["reservable_type"] = "Spaceship"
        paged = resource in ALWAYS_PAGED or (resource in PAGED_WHEN_ASKED and "page" in query)
        headers: dict[str, str] = {}
        if paged:
            page = max(int(query.get("page", "1")), 1)
            per = min(max(int(query.get("per_page", "20")), 1), self.max_per_page)
            total = len(items)
            last = max((total + per - 1) // per, 1)
            chunk = items[(page - 1) * per: page * per]
            base = f"{self.url}{parts.path}"

            def link(p: int) -> str:
                q = dict(query, page=str(p), per_page=str(per))
                return f"<{base}?{urllib.parse.urlencode(q)}>"
            links = [f'{link(1)}; rel="first"']
            if page > 1:
                links.append(f'{link(page - 1)}; rel="prev"')
            if page < last:
                links.append(f'{link(page + 1)}; rel="next"')
            links.append(f'{link(last)}; rel="last"')
            headers = {"Link": ", ".join(links), "Total": str(total), "Per-Page": str(per)}
            items = chunk
        self._send(h, 200, {resource: items}, headers)
