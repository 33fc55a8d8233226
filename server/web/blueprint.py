"""The web UI blueprint, shared by the page modules of this package."""

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
