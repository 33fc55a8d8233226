"""The fabpass server: Flask app factory, models, ingest, access-list publisher, UI and API.

`create_app` is imported on first use (PEP 562), so importing any `server.*`
module (a command, the models) does not load Flask.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from server.app import create_app

        return create_app
    raise AttributeError(f"module 'server' has no attribute {name!r}")
