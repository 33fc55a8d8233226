"""Flask-tutorial fixtures (app, client, runner) on a migrated, seeded SQLite database."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

_spec = importlib.util.spec_from_file_location("fabpass_web_seed", Path(__file__).with_name("seed.py"))
assert _spec is not None and _spec.loader is not None
seedmod = importlib.util.module_from_spec(_spec)
sys.modules["fabpass_web_seed"] = seedmod
_spec.loader.exec_module(seedmod)

sys.path.insert(0, str(Path(__file__).parent))  # browser_kit, for the browser tests
import browser_kit  # noqa: E402

make_app = seedmod.make_app


@pytest.fixture()
def app_and_seed(tmp_path: Path) -> Iterator[tuple[Flask, Any]]:
    app, data = make_app(f"sqlite:///{tmp_path}/web.db")
    yield app, data
    app.extensions["fabpass.engine"].dispose()


@pytest.fixture()
def app(app_and_seed: tuple[Flask, Any]) -> Flask:
    return app_and_seed[0]


@pytest.fixture()
def seed(app_and_seed: tuple[Flask, Any]) -> Any:
    return app_and_seed[1]


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture()
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


csrf_from = seedmod.csrf_from
Actions = seedmod.Actions


@pytest.fixture()
def actions(client: FlaskClient) -> Actions:
    return Actions(client)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium shared by one browser-test module (see browser_kit.launch_chromium)."""
    yield from browser_kit.launch_chromium()
