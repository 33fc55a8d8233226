"""The Fab-manager connector part of the OpenAPI document (contract section 6), merged into
`server.api.openapi.document` beside the other parts."""

from __future__ import annotations

from typing import Any

ERR = {"$ref": "#/components/responses/Error"}
TARGET = {"oneOf": [
    {"type": "object", "properties": {"machine": {"type": "string"}}, "required": ["machine"],
     "additionalProperties": False},
    {"type": "object", "properties": {"group": {"type": "string"}}, "required": ["group"],
     "additionalProperties": False}]}
SETTINGS_IN: dict[str, Any] = {
    "type": "object",
    "properties": {
        "url": {"type": "string", "description": "Fab-manager's address (http or https)"},
        "token": {"type": "string", "description": "its Open API key; stored, never shown back"},
        "site": {"type": ["string", "null"], "description": "home site of members it creates"},
        "trainings": {"type": "object", "additionalProperties": TARGET,
                      "description": "Fab-manager training id -> fabpass machine or group"},
        "machines": {"type": "object", "additionalProperties": {"type": "string"},
                     "description": "Fab-manager machine id -> fabpass machine slug"},
    },
    "required": ["url", "token"],
    "additionalProperties": False,
}
SETTINGS_OUT: dict[str, Any] = {
    "type": "object",
    "properties": {"configured": {"type": "boolean"}, "url": {"type": ["string", "null"]},
                   "site": {"type": ["string", "null"]}, "trainings": {"type": "object"},
                   "machines": {"type": "object"}, "updated_at": {"type": "string"},
                   "last_run": {"type": ["object", "null"]}},
    "required": ["configured", "url", "trainings", "machines"],
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


PATHS: dict[str, Any] = {
    "/integrations/fabmanager": {
        "get": {"summary": "The Fab-manager connector's settings (no token) and last run (admin)",
                "responses": {"200": {"description": "OK", **_json(SETTINGS_OUT)},
                              "401": ERR, "403": ERR}},
        "put": {"summary": "Set the Fab-manager connector (admin)",
                "requestBody": {"required": True, **_json(SETTINGS_IN)},
                "responses": {"200": {"description": "OK", **_json(SETTINGS_OUT)},
                              "400": ERR, "401": ERR, "403": ERR, "404": ERR}},
    },
}
