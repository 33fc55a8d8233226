"""The paid-use part of the OpenAPI document (contract section 6, "Paid use"), merged into
`server.api.openapi.document` so that the billing routes are documented beside their module."""

from __future__ import annotations

from typing import Any

ERR = {"$ref": "#/components/responses/Error"}
ID = {"type": "integer", "minimum": 1, "maximum": 2147483647}
TIME = {"type": "string", "format": "date-time"}
CENTS = {"type": "integer", "minimum": 0}

PRICES: dict[str, Any] = {
    "basis": {"enum": ["session", "active"], "default": "session"},
    "per_minute_cents": CENTS,
    "round_minutes": {"type": "integer", "minimum": 1, "default": 1,
                      "description": "bill per started N minutes"},
    "session_cents": CENTS, "minimum_cents": CENTS, "min_balance_cents": CENTS,
    "per_kwh_cents": {**CENTS, "description": "where the session's energy is measured"},
}
TARIFF: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "a new tariff version (null: free from now); flat fields are the default "
                   "category, `categories` override them per member tag",
    "properties": {"valid_from": {**TIME, "description": "default now; not in a closed month"},
                   **PRICES,
                   "categories": {"type": "object", "additionalProperties": {
                       "type": "object", "properties": PRICES, "additionalProperties": False}}},
    "additionalProperties": False,
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _page(ref: str) -> dict[str, Any]:
    return {"200": {"description": "a page of results", **_json({
        "type": "object", "required": ["items", "total", "page", "per_page"],
        "properties": {"items": {"type": "array", "items": _ref(ref)},
                       "total": {"type": "integer"}, "page": {"type": "integer"},
                       "per_page": {"type": "integer"}}})}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): ERR for c in (401, 400, *codes)}


def _q(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID}


SCHEMAS: dict[str, Any] = {
    "Tariff": {"type": "object", "required": ["version", "valid_from"], "properties": {
        "version": {"type": "integer"}, "valid_from": TIME, "free": {"type": "boolean"},
        **PRICES, "categories": {"type": "object"}}},
    "Charge": {"type": "object", "required": ["session", "machine", "member", "amount_cents",
                                              "minutes_billed", "tariff_version"], "properties": {
        "id": ID, "session": {"type": "string"}, "machine": {"type": ["string", "null"]},
        "member": {"type": ["integer", "null"]}, "amount_cents": {"type": "integer"},
        "minutes_billed": {"type": "integer"}, "tariff_version": {"type": ["integer", "null"]},
        "computed_cents": {"type": "integer"}, "category": {"type": ["string", "null"]},
        "free": {"type": ["string", "null"]}, "override": {"type": ["string", "null"]},
        "reason": {"type": ["string", "null"]}, "started": TIME}},
    "TopUp": {"type": "object", "required": ["id", "member", "amount_cents", "method"],
              "properties": {"id": ID, "member": ID, "amount_cents": {"type": "integer"},
                             "method": {"type": "string"},
                             "reference": {"type": ["string", "null"]}, "at": TIME}},
    "Balance": {"type": "object", "required": ["balance_cents", "topups_cents", "charges_cents"],
                "properties": {"balance_cents": {"type": "integer"},
                               "topups_cents": {"type": "integer"},
                               "charges_cents": {"type": "integer"}}},
}

PATHS: dict[str, Any] = {
    "/machines/{machine_id}/tariffs": {
        "parameters": [_path("machine_id")],
        "get": {"summary": "A machine's tariff versions, oldest first",
                "responses": {**_page("Tariff"), **_errors(403, 404)}},
    },
    "/members/{member_id}/topups": {
        "parameters": [_path("member_id")],
        "post": {"summary": "Record a top-up of prepaid credit", "requestBody": {
            "required": True, **_json({"type": "object", "required": ["amount_cents", "method"],
                                       "additionalProperties": False, "properties": {
                "amount_cents": {"type": "integer", "not": {"const": 0},
                                 "description": "non-zero; negative: a refund"},
                "method": {"type": "string",
                           "description": "cash, card, HelloAsso or transfer"},
                "reference": {"type": ["string", "null"], "maxLength": 200}}})},
            "responses": {"201": {"description": "recorded", **_json(_ref("TopUp"))},
                          **_errors(403, 404)}},
    },
    "/members/{member_id}/balance": {
        "parameters": [_path("member_id")],
        "get": {"summary": "A member's prepaid balance (top-ups - charges)",
                "responses": {"200": {"description": "OK", **_json(_ref("Balance"))},
                              **_errors(403, 404)}},
    },
    "/charges": {
        "get": {"summary": "Charges of sessions started in the period", "parameters": [
            _q("member_id", ID), _q("machine_id", ID), _q("since", TIME), _q("until", TIME),
            _q("page", {"type": "integer", "minimum": 1, "default": 1}),
            _q("per_page", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50})],
            "responses": {**_page("Charge"), **_errors()}},
    },
    "/charges/{charge_id}/adjust": {
        "parameters": [_path("charge_id")],
        "post": {"summary": "Waive a charge, set another amount, or (neither) restore the tariff's",
                 "requestBody": {"required": True, **_json({
                     "type": "object", "required": ["reason"], "additionalProperties": False,
                     "properties": {"reason": {"type": "string", "minLength": 1,
                                               "maxLength": 500},
                                    "waive": {"type": "boolean"}, "amount_cents": CENTS}})},
                 "responses": {"200": {"description": "OK", **_json(_ref("Charge"))},
                               **_errors(403, 404)}},
    },
}

__all__ = ["PATHS", "SCHEMAS", "TARIFF"]
