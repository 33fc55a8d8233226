"""A small client for Fab-manager's Open API v1: the five lists the connector reads, decoded
strictly.

Why strict: a sync diffs what it reads against what it has, so a page that lost a field would
look like "every training withdrawn". Any surprise (a refused key, a timeout, a 5xx, a body that
is not the documented shape, an unknown reservable type) raises `FabmanagerError` naming what
was wrong, and the caller applies nothing.

Shapes (app/views/open_api/v1 in sleede/fab-manager): `{"users": [...]}` etc.; pagination is
in the `Link` (rel="next"), `Total` and `Per-Page` headers. Users and user_trainings are paged
only when `page` is given, reservations always, trainings and machines never.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

MAX_PAGES = 500  # 500 pages of 100: far more than any lab; a loop that never ends is a bug
PER_PAGE = 100
RESERVABLE_TYPES = frozenset({"Machine", "Training", "Space", "Event"})
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class FabmanagerError(Exception):
    """The run must stop: the message says why, for the status page and the CLI."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class FmUser:
    id: int
    email: str
    full_name: str


@dataclass(frozen=True)
class FmNamed:
    """A training or a machine: only the id and name matter here."""

    id: int
    name: str


@dataclass(frozen=True)
class FmUserTraining:
    id: int
    user_id: int
    training_id: int


@dataclass(frozen=True)
class FmSlot:
    start: datetime
    end: datetime
    canceled: bool


@dataclass(frozen=True)
class FmReservation:
    id: int
    user_id: int
    reservable_type: str
    reservable_id: int
    slots: tuple[FmSlot, ...]


def _field(item: Any, key: str, kind: type | tuple[type, ...], where: str,
           *, nullable: bool = False) -> Any:
    if not isinstance(item, dict):
        raise FabmanagerError(f"{where}: an item is not an object")
    if key not in item:
        raise FabmanagerError(f"{where}: an item has no field {key!r}")
    value = item[key]
    if value is None and nullable:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise FabmanagerError(f"{where}: field {key!r} has the wrong type ({value!r})")
    return value


def _time(item: Any, key: str, where: str, *, nullable: bool = False) -> datetime | None:
    raw = _field(item, key, str, where, nullable=nullable)
    if raw is None:
        return None
    try:
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise FabmanagerError(f"{where}: field {key!r} is not a time ({raw!r})") from None
    if dt.tzinfo is None:
        raise FabmanagerError(f"{where}: field {key!r} has no time zone ({raw!r})")
    return dt.astimezone(UTC)


def decode_user(item: Any) -> FmUser:
    full_name = _field(item, "full_name", str, "users", nullable=True)
    email = _field(item, "email", str, "users")
    return FmUser(id=_field(item, "id", int, "users"), email=email.strip(),
                  full_name=(full_name or "").strip() or email.strip())


def decode_named(item: Any, where: str) -> FmNamed:
    return FmNamed(id=_field(item, "id", int, where), name=_field(item, "name", str, where))


def decode_user_training(item: Any) -> FmUserTraining:
    return FmUserTraining(id=_field(item, "id", int, "user_trainings"),
                          user_id=_field(item, "user_id", int, "user_trainings"),
                          training_id=_field(item, "training_id", int, "user_trainings"))


def decode_reservation(item: Any) -> FmReservation:
    where = "reservations"
    kind = _field(item, "reservable_type", str, where)
    if kind not in RESERVABLE_TYPES:
        raise FabmanagerError(f"{where}: unknown reservable_type {kind!r}")
    slots = []
    for slot in _field(item, "reserved_slots", list, where):
        start = _time(slot, "start_at", "reserved_slots")
        end = _time(slot, "end_at", "reserved_slots")
        canceled = _time(slot, "canceled_at", "reserved_slots", nullable=True)
        assert start is not None and end is not None
        slots.append(FmSlot(start=start, end=end, canceled=canceled is not None))
    return FmReservation(id=_field(item, "id", int, where), user_id=_field(item, "user_id", int, where),
                         reservable_type=kind, reservable_id=_field(item, "reservable_id", int, where),
                         slots=tuple(slots))


class FabmanagerClient:
    """GETs on `{url}/open_api/v1/...` with `Authorization: Token token=<key>`."""

    def __init__(self, url: str, token: str, *, timeout: float = 15.0,
                 max_pages: int = MAX_PAGES) -> None:
        self.base = url.rstrip("/") + "/open_api/v1/"
        self.token = token
        self.timeout = timeout
        self.max_pages = max_pages
        self._origin = urllib.parse.urlsplit(self.base)[:2]

    def _get(self, url: str) -> tuple[Any, Any]:
        req = urllib.request.Request(url, headers={
            "Authorization": f"Token token={self.token}", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                raw = resp.read(50 * 1024 * 1024)
                headers = resp.headers
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                raise FabmanagerError("Fab-manager refused the API key (401 Bad credentials)") \
                    from None
            raise FabmanagerError(f"Fab-manager answered HTTP {exc.code} for {url}") from None
        except (TimeoutError, OSError) as exc:  # URLError is an OSError; so is a timeout
            reason = getattr(exc, "reason", exc)
            raise FabmanagerError(f"cannot reach Fab-manager at {url}: {reason}") from None
        try:
            return json.loads(raw), headers
        except ValueError:
            raise FabmanagerError(f"Fab-manager sent a body that is not JSON for {url}") from None

    def _list(self, resource: str, *, paged: bool, params: dict[str, str] | None = None
              ) -> list[Any]:
        query = dict(params or {})
        if paged:
            query.update(page="1", per_page=str(PER_PAGE))
        url: str | None = self.base + resource + ("?" + urllib.parse.urlencode(query)
                                                  if query else "")
        items: list[Any] = []
        pages = 0
        total: int | None = None
        while url is not None:
            pages += 1
            if pages > self.max_pages:
                raise FabmanagerError(f"{resource}: more than {self.max_pages} pages")
            body, headers = self._get(url)
            if not isinstance(body, dict) or not isinstance(body.get(resource), list):
                raise FabmanagerError(f"{resource}: the page has no list {resource!r}")
            items.extend(body[resource])
            url = None
            if paged:
                if headers.get("Total") is not None:
                    try:
                        total = int(headers["Total"])
                    except ValueError:
                        raise FabmanagerError(f"{resource}: header Total is not a number") \
                            from None
                match = _NEXT.search(headers.get("Link") or "")
                if match and body[resource] and (total is None or len(items) < total):
                    url = urllib.parse.urljoin(self.base, match.group(1))
                    if urllib.parse.urlsplit(url)[:2] != self._origin:
                        raise FabmanagerError(f"{resource}: the next page is on another host")
        if total is not None and len(items) != total:
            raise FabmanagerError(f"{resource}: read {len(items)} items, Total said {total}")
        return items

    def users(self) -> list[FmUser]:
        return [decode_user(i) for i in self._list("users", paged=True)]

    def trainings(self) -> list[FmNamed]:
        return [decode_named(i, "trainings") for i in self._list("trainings", paged=False)]

    def machines(self) -> list[FmNamed]:
        return [decode_named(i, "machines") for i in self._list("machines", paged=False)]

    def user_trainings(self) -> list[FmUserTraining]:
        return [decode_user_training(i) for i in self._list("user_trainings", paged=True)]

    def reservations(self) -> list[FmReservation]:
        return [decode_reservation(i) for i in self._list(
            "reservations", paged=True, params={"reservable_type": "Machine"})]
