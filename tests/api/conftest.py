"""API fixtures: a migrated, seeded app (SQLite and PostgreSQL via `db_url`) and a token client."""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
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


PG_BASE = os.environ.get("FABPASS_TEST_DATABASE_URL",
                         "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[tuple[str, Any]]:
    """One migrated, seeded PostgreSQL database used as a TEMPLATE for each test's copy."""
    import sqlalchemy as sa

    name = f"fabpass_apitpl_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = PG_BASE.rpartition("/")[0]
    app, data = seedmod.make_app(f"{base}/{name}")
    app.extensions["fabpass.engine"].dispose()
    yield name, data
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def api_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """The seeded app, once on SQLite and once on PostgreSQL (a copy of a template DB)."""
    if request.param == "sqlite":
        app, data = seedmod.make_app(f"sqlite:///{tmp_path}/api.db")
        yield app, data
        app.extensions["fabpass.engine"].dispose()
        return
    import sqlalchemy as sa

    from server.app import create_app

    tpl, data = request.getfixturevalue("pg_template")
    name = f"fabpass_api_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{tpl}"'))
    base = PG_BASE.rpartition("/")[0]
    app = create_app({"TESTING": True, "DATABASE_URL": f"{base}/{name}", "SECRET_KEY": "test"})
    yield app, data
    app.extensions["fabpass.engine"].dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture()
def api(api_app: tuple[Any, Any]) -> Api:
    return Api(api_app[0].test_client(), api_app[1].token)


@pytest.fixture()
def seed(api_app: tuple[Any, Any]) -> Any:
    return api_app[1]
