"""API fixtures: a migrated, seeded app (SQLite and PostgreSQL via `db_url`) and a token client."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if "fabpass_web_seed" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "fabpass_web_seed", Path(__file__).parent.parent / "web" / "seed.py")
    assert _spec is not None and _spec.loader is not None
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules["fabpass_web_seed"] = _mod
    _spec.loader.exec_module(_mod)
seedmod = sys.modules["fabpass_web_seed"]


class Api:
    """A test client that sends the Bearer token and JSON."""

    def __init__(self, client: Any, token: str) -> None:
        self.client = client
        self.token = token

    def __call__(self, method: str, path: str, json: Any = None, token: str | None = None,
                 **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return self.client.open("/api/v1" + path, method=method, json=json, headers=headers, **kw)


@pytest.fixture()
def api_app(db_url: str) -> Iterator[tuple[Any, Any]]:
    app, data = seedmod.make_app(db_url)
    yield app, data
    app.extensions["fabpass.engine"].dispose()


@pytest.fixture()
def api(api_app: tuple[Any, Any]) -> Api:
    return Api(api_app[0].test_client(), api_app[1].token)


@pytest.fixture()
def seed(api_app: tuple[Any, Any]) -> Any:
    return api_app[1]
