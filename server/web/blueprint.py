"""The web UI blueprint, shared by the page modules of this package."""

from collections.abc import Callable
from typing import Any

from flask import Blueprint

bp = Blueprint("web", __name__)


MAX_ID = 2**31 - 1


def arg_id(source: Any, name: str) -> int | None:
    """An id from a query or form (None when absent or out of range: never a DB overflow)."""
    value = source.get(name, type=int)
    return value if value is not None and 1 <= value <= MAX_ID else None


def arg_page(source: Any) -> int:
    value = source.get("page", 1, type=int) or 1
    return min(max(1, value), 100_000)


def id_url(endpoint: str, name: str) -> Callable[[int], str]:
    """`url_for(endpoint, **{name: id})` for many ids, the URL built once per call.

    Row loops (dashboard cards, member lists) would otherwise build one URL per row. The
    shortcut only applies when the id is the URL's last segment; otherwise each id goes
    through `url_for`.
    """
    from flask import url_for

    values: dict[str, Any] = {name: MAX_ID}
    sample = url_for(endpoint, **values)
    tail = "/" + str(MAX_ID)
    if sample.endswith(tail) and sample.count(str(MAX_ID)) == 1:
        prefix = sample[: -len(tail) + 1]
        return lambda value: prefix + str(int(value))
    return lambda value: url_for(endpoint, **{**values, name: value})


WRITES_KEY = "fabpass.web.writes"  # app.extensions: how many write requests this process served


def writes_count() -> int:
    """How many write (non-GET) requests this process has served (`pages._count_writes`): a
    page cache keyed on it is cleared by any change made through this app."""
    from flask import current_app

    return int(current_app.extensions.get(WRITES_KEY, 0))


def shared(name: str, key: Any, ttl_s: float, compute: Callable[[], Any]) -> Any:
    """`compute()`'s answer, shared by every request of this process that asks with the same
    `key` for `ttl_s` seconds and until its next write request.

    For what the dashboard shows every viewer of the same sites (it is polled every 2 s by
    every open browser): as `pages.machine_states`, a change made through this app shows at
    once, one made by another process (the CLI, the ingest) within `ttl_s`. Only for answers
    that are plain data (texts, numbers), never for database rows."""
    import time

    from flask import current_app

    store: dict[Any, tuple[float, Any]] = current_app.extensions.setdefault(
        "fabpass.web.shared", {})
    full = (name, writes_count(), key)
    now = time.monotonic()
    hit = store.get(full)
    if hit is not None and now - hit[0] < ttl_s:
        return hit[1]
    value = compute()
    if len(store) > 256:  # old write counts and scopes: never grows without bound
        store.clear()
    store[full] = (now, value)
    return value
