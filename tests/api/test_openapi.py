"""The OpenAPI document matches the routes, and a property-based run finds no 500."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from server.api.openapi import document

schemathesis_checks = schemathesis.checks


def _flask_to_openapi(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.removeprefix("/api/v1"))


def test_every_route_is_documented_and_vice_versa(tmp_path: Any) -> None:
    seedmod = sys.modules["fabpass_web_seed"]
    app, _ = seedmod.make_app(f"sqlite:///{tmp_path}/o.db")
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1"):
            for m in rule.methods - {"HEAD", "OPTIONS"}:  # type: ignore[operator]
                routes.add((m.lower(), _flask_to_openapi(rule.rule)))
    doc = document()
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops if m != "parameters"}
    assert routes == documented
    served = app.test_client().get("/api/v1/openapi.json").get_json()
    assert served == doc
    app.extensions["fabpass.engine"].dispose()


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    seedmod = sys.modules["fabpass_web_seed"]
    app, data = seedmod.make_app(f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/f.db")
    yield app, data
    app.extensions["fabpass.engine"].dispose()


@pytest.fixture(scope="module")
def api_schema(fuzz_app: tuple[Any, Any]) -> Any:
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzz_app[0])


POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE


def _cases() -> list[Any]:
    """Every operation in positive mode; negative mode where there is input to spoil."""
    out = []
    for p, ops in sorted(document()["paths"].items()):
        for m, op in sorted(ops.items()):
            if m == "parameters":
                continue
            out.append(pytest.param(p, m, POSITIVE, id=f"{m} {p} positive"))
            if "parameters" in ops or op.get("parameters") or op.get("requestBody"):
                out.append(pytest.param(p, m, NEGATIVE, id=f"{m} {p} negative"))
    return out


@pytest.mark.parametrize(("path", "method", "mode"), _cases())
def test_api_fuzz_no_500(path: str, method: str, mode: Any, api_schema: Any,
                         fuzz_app: tuple[Any, Any]) -> None:
    """Bounded property-based run per operation: valid and invalid inputs, never a 500."""
    from hypothesis import given

    token = fuzz_app[1].token
    operation = api_schema[path][method.upper()]
    checks = [schemathesis_checks.not_a_server_error, content_type_conformance]
    if mode == POSITIVE:
        checks += [status_code_conformance, response_schema_conformance]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True, database=None)
    def run(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=checks)

    run()
