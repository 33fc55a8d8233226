"""The OpenAPI 3 document of API v1, written by hand to match the resource modules of server/api/.

tests/api/test_openapi.py checks that every registered route is documented and vice versa.
"""

from __future__ import annotations

from typing import Any

from server.api import openapi_billing as billing
from server.api import openapi_integrations as integrations
from server.services.machines import MACHINE_KINDS

ERR = {"$ref": "#/components/responses/Error"}
ID = {"type": "integer", "minimum": 1, "maximum": 2147483647}
TIME = {"type": "string", "format": "date-time"}
NTIME = {"type": ["string", "null"], "format": "date-time"}
SLUG = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"}


def _page_params() -> list[dict[str, Any]]:
    return [
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
        {"name": "per_page", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
    ]


def _q(name: str, schema: dict[str, Any], desc: str = "") -> dict[str, Any]:
    p: dict[str, Any] = {"name": name, "in": "query", "schema": schema}
    if desc:
        p["description"] = desc
    return p


def _path(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or ID}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _ok(ref: str, code: str = "200", desc: str = "OK") -> dict[str, Any]:
    return {code: {"description": desc, **_json({"$ref": f"#/components/schemas/{ref}"})}}


def _list(ref: str) -> dict[str, Any]:
    return {"200": {"description": "a page of results", **_json({
        "type": "object", "required": ["items", "total", "page", "per_page"],
        "properties": {"items": {"type": "array", "items": {"$ref": f"#/components/schemas/{ref}"}},
                       "total": {"type": "integer"}, "page": {"type": "integer"},
                       "per_page": {"type": "integer"}}})}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): ERR for c in (401, 400, *codes)}


def _body(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"required": True, **_json({"type": "object", "properties": props,
                                       "required": required, "additionalProperties": False})}


MEMBER_IN = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "email": {"type": ["string", "null"], "format": "email"},
    "member_no": {"type": ["string", "null"], "maxLength": 64},
    "site": {"type": ["string", "null"], "description": "site slug"},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 64}},
    "active_until": {"type": ["string", "null"], "format": "date"},
}

POLICY = {
    "type": "object",
    "description": "absent key: the node config's default; null: off (contract section 2)",
    "properties": {
        "mode": {"enum": ["tap", "present", None]},
        "max_session_s": {"type": ["integer", "null"], "minimum": 0},
        "warn_before_s": {"type": ["integer", "null"], "minimum": 0},
        "grace_s": {"type": ["integer", "null"], "minimum": 0},
        "idle_end_s": {"type": ["integer", "null"], "minimum": 0},
        "power_off": {"enum": ["immediate", "when_idle", None]},
        "handover": {"type": ["boolean", "null"]},
        "end_on_revoke": {"type": ["boolean", "null"]},
        "on_stale": {"enum": ["deny", "known_badges", None]},
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message", "fields"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                       "fields": {"type": "object", "additionalProperties": {"type": "string"}}}}}},
    "Site": {"type": "object", "required": ["id", "slug", "name", "timezone"], "properties": {
        "id": ID, "slug": SLUG, "name": {"type": "string"}, "timezone": {"type": "string"}}},
    "Badge": {"type": "object", "required": ["uid", "member_id", "status"], "properties": {
        "id": ID, "uid": {"type": "string"}, "member_id": ID,
        "status": {"enum": ["active", "lost", "inactive"]}, "created_at": NTIME}},
    "Member": {"type": "object", "required": ["id", "name", "active", "badges"], "properties": {
        "id": ID, **MEMBER_IN, "active": {"type": "boolean"}, "created_at": NTIME,
        "badges": {"type": "array", "items": {"$ref": "#/components/schemas/Badge"}}}},
    "Machine": {"type": "object", "required": ["id", "slug", "name", "site", "kind", "status"],
                "properties": {
        "id": ID, "slug": SLUG, "name": {"type": "string"}, "site": SLUG,
        "kind": {"enum": list(MACHINE_KINDS)}, "node": {"type": ["string", "null"]},
        "requires_authorization": {"type": "boolean"}, "policy": POLICY,
        "locked": {"type": "boolean"}, "lock_reason": {"type": ["string", "null"]},
        "active": {"type": "boolean"}, "hourly_rate": {"type": ["number", "null"]},
        "status": {"type": "object", "description": "live status", "properties": {
            "state": {"type": "string", "description": "idle, in_use, locked, offline, no_acl…"},
            "online": {"type": "boolean"}, "node_state": {"type": ["string", "null"]},
            "member": {"type": ["integer", "null"]}, "session_started": NTIME,
            "last_seen": NTIME}}}},
    "Authorization": {"type": "object", "required": ["id", "member_id", "role"], "properties": {
        "id": ID, "member_id": ID, "machine_id": {"type": ["integer", "null"]},
        "group_id": {"type": ["integer", "null"]}, "role": {"enum": ["user", "trainer"]},
        "granted_at": TIME, "granted_via": {"type": "string"}, "expires_at": NTIME,
        "revoked_at": NTIME, "revoke_reason": {"type": ["string", "null"]},
        "valid": {"type": "boolean"}}},
    "Session": {"type": "object", "required": ["id", "started", "ended"], "properties": {
        "id": ID, "session": {"type": "string"}, "machine_id": {"type": ["integer", "null"]},
        "machine": {"type": ["string", "null"]}, "member_id": {"type": ["integer", "null"]},
        "uid": {"type": "string"}, "started": TIME, "ended": NTIME,
        "duration_s": {"type": ["number", "null"]}, "active_s": {"type": ["number", "null"]},
        "reason": {"type": ["string", "null"]},
        "clock_untrusted": {"type": "boolean"}}},  # placed from the receive time (issue 13)
    "Node": {"type": "object", "required": ["node", "online"], "properties": {
        "node": SLUG, "site": {"type": ["string", "null"]}, "machine": {"type": ["string", "null"]},
        "online": {"type": "boolean"}, "state": {"type": ["string", "null"]},
        "acl_version": {"type": ["integer", "null"]},
        "acl_published_version": {"type": ["integer", "null"]},
        "software": {"type": ["string", "null"]}, "last_seen": NTIME}},
    "UsageReport": {"type": "object", "required": ["rows"], "properties": {"rows": {
        "type": "array", "items": {"type": "object", "properties": {
            "sessions": {"type": "integer"}, "hours": {"type": "number"},
            "active_hours": {"type": "number"}, "members": {"type": "integer"},
            "kwh": {"type": "number", "description": "energy measured by smart plugs"}}}}}},
}

PATHS: dict[str, Any] = {
    "/openapi.json": {"get": {"summary": "This document", "security": [],
                              "responses": {"200": {"description": "OpenAPI 3 document",
                                                    **_json({"type": "object"})}}}},
    "/sites": {
        "get": {"summary": "List sites", "responses": {**_list("Site"), **_errors()}},
        "post": {"summary": "Create a site (admin token)", "requestBody": _body({
            "slug": SLUG, "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "timezone": {"type": "string", "description": "IANA zone, default UTC"}},
            ["slug", "name"]),
            "responses": {**_ok("Site", "201", "created"), **_errors(403, 409)}},
    },
    "/members": {
        "get": {"summary": "List members", "parameters": [
            _q("q", {"type": "string"}, "search name, email, number or badge UID"),
            _q("active", {"type": "boolean"}), _q("site", {"type": "string"}), *_page_params()],
            "responses": {**_list("Member"), **_errors()}},
        "post": {"summary": "Create a member", "requestBody": _body(MEMBER_IN, ["name"]),
                 "responses": {**_ok("Member", "201", "created"), **_errors(403)}},
    },
    "/members/{member_id}": {
        "parameters": [_path("member_id")],
        "get": {"summary": "One member", "responses": {**_ok("Member"), **_errors(403, 404)}},
        "patch": {"summary": "Change a member", "requestBody": _body(
            {**MEMBER_IN, "active": {"type": "boolean"}}, []),
            "responses": {**_ok("Member"), **_errors(403, 404)}},
        "delete": {"summary": "Deactivate a member (kept; erasure is separate)",
                   "responses": {"204": {"description": "deactivated"}, **_errors(403, 404)}},
    },
    "/members/{member_id}/badges": {
        "parameters": [_path("member_id")],
        "post": {"summary": "Enrol a badge", "requestBody": _body(
            {"uid": {"type": "string", "description": "separators and case normalised"}}, ["uid"]),
            "responses": {**_ok("Badge", "201", "enrolled"), **_errors(403, 404, 409)}},
    },
    "/badges/{uid}": {
        "parameters": [_path("uid", {"type": "string"})],
        "patch": {"summary": "Change a badge's status", "requestBody": _body(
            {"status": {"enum": ["active", "lost", "inactive"]}}, ["status"]),
            "responses": {**_ok("Badge"), **_errors(403, 404)}},
    },
    "/machines": {
        "get": {"summary": "List machines with live status",
                "parameters": [_q("site", {"type": "string"}), *_page_params()],
                "responses": {**_list("Machine"), **_errors()}},
        "post": {"summary": "Create a machine", "requestBody": _body({
            "slug": SLUG, "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "site": SLUG, "kind": {"enum": list(MACHINE_KINDS)},
            "node": {"type": ["string", "null"], "description": "creates or binds that node"},
            "requires_authorization": {"type": "boolean", "default": True}, "policy": POLICY},
            ["slug", "name", "site"]),
            "responses": {**_ok("Machine", "201", "created"), **_errors(403, 409)}},
    },
    "/machines/{machine_id}": {
        "parameters": [_path("machine_id")],
        "get": {"summary": "One machine with live status",
                "responses": {**_ok("Machine"), **_errors(403, 404)}},
        "patch": {"summary": "Change a machine (also lock/unlock)", "requestBody": _body({
            "name": {"type": "string"}, "kind": {"enum": list(MACHINE_KINDS)},
            "node": {"type": ["string", "null"]}, "requires_authorization": {"type": "boolean"},
            "policy": POLICY, "hourly_rate": {"type": ["number", "null"], "minimum": 0},
            "active": {"type": "boolean"}, "locked": {"type": "boolean"},
            "lock_reason": {"type": ["string", "null"]}, "tariff": billing.TARIFF}, []),
            "responses": {**_ok("Machine"), **_errors(403, 404, 409)}},
    },
    "/authorizations": {
        "get": {"summary": "List authorizations", "parameters": [
            _q("member_id", ID), _q("machine_id", ID, "also matches groups containing it"),
            _q("valid", {"type": "boolean"}, "only valid ones"), *_page_params()],
            "responses": {**_list("Authorization"), **_errors()}},
        "post": {"summary": "Grant a training", "requestBody": _body({
            "member_id": ID, "machine_id": ID, "group_id": ID,
            "role": {"enum": ["user", "trainer"], "default": "user"},
            "expires_at": NTIME}, ["member_id"]),
            "responses": {**_ok("Authorization", "201", "granted"), **_errors(403, 404, 409)}},
    },
    "/authorizations/{authorization_id}": {
        "parameters": [_path("authorization_id")],
        "get": {"summary": "One authorization",
                "responses": {**_ok("Authorization"), **_errors(403, 404)}},
        "delete": {"summary": "Revoke (kept for the audit trail)",
                   "parameters": [_q("reason", {"type": "string", "maxLength": 500})],
                   "responses": {"204": {"description": "revoked"}, **_errors(403, 404)}},
    },
    "/sessions": {
        "get": {"summary": "Usage sessions (open ones have ended: null)", "parameters": [
            _q("machine_id", ID), _q("member_id", ID), _q("since", TIME), _q("until", TIME),
            *_page_params()], "responses": {**_list("Session"), **_errors()}},
    },
    "/nodes": {"get": {"summary": "Nodes", "parameters": _page_params(),
                       "responses": {**_list("Node"), **_errors()}}},
    "/reports/usage": {
        "get": {"summary": "Usage report", "parameters": [
            {**_q("group_by", {"enum": ["machine", "member", "month", "site", "machine_group",
                                        "member_tag", "kind", "day", "week"]},
                  "the group key; a comma-separated list is accepted"), "required": True},
            _q("since", TIME), _q("until", TIME),
            _q("site", {"type": "string"}, "site slug; a manager token: one of its sites, "
               "optional if it has only one"),
            _q("format", {"enum": ["json", "csv"], "default": "json"})],
            "responses": {"200": {"description": "rows", **_json(
                {"$ref": "#/components/schemas/UsageReport"}),
                "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/UsageReport"}},
                    "text/csv": {"schema": {"type": "string"}}}}, **_errors(403)}},
    },
}

# Bookings (contract section 6; server/api/bookings.py)
SCHEMAS["Booking"] = {"type": "object", "required": ["id", "machine_id", "member_id", "start",
                                                     "end"], "properties": {
    "id": ID, "machine_id": ID, "machine": SLUG, "member_id": ID, "start": TIME, "end": TIME,
    "training": {"type": "boolean"}, "source": {"type": "string"},
    "external_id": {"type": ["string", "null"]},
    "hit_by_lock": {"type": "boolean", "description": "still to come on a now locked machine"},
    "created_at": TIME, "cancelled_at": NTIME}}
PATHS["/bookings"] = {
    "get": {"summary": "Bookings overlapping [since, until) (cancelled ones left out)",
            "parameters": [_q("machine_id", ID), _q("member_id", ID), _q("since", TIME),
                           _q("until", TIME), *_page_params()],
            "responses": {**_list("Booking"), **_errors()}},
    "post": {"summary": "Book a machine (a start in the past is allowed when the end is not)",
             "requestBody": _body({
                 "machine_id": ID, "member_id": ID, "start": TIME, "end": TIME,
                 "training": {"type": "boolean", "default": False,
                              "description": "the member's training itself (trainers)"},
                 "source": {"type": "string", "maxLength": 40, "default": "fabpass"},
                 "external_id": {"type": "string", "maxLength": 200}},
                 ["machine_id", "member_id", "start", "end"]),
             "responses": {**_ok("Booking", "201", "booked"), **_errors(403, 404, 409)}},
}
PATHS["/bookings/usage"] = {
    "get": {"summary": "Booked vs used per machine (booked_hours, used_hours, no_shows)",
            "parameters": [_q("since", TIME), _q("until", TIME)],
            "responses": {"200": {"description": "rows", **_json({"type": "object"})},
                          **_errors()}},
}
PATHS["/bookings/{booking_id}"] = {
    "parameters": [_path("booking_id")],
    "get": {"summary": "One booking", "responses": {**_ok("Booking"), **_errors(403, 404)}},
    "delete": {"summary": "Cancel (kept for the reports)",
               "responses": {"204": {"description": "cancelled"}, **_errors(403, 404)}},
}


# issue 20: webhooks (contract section 6)
WEBHOOK_EVENTS = ["session.started", "session.ended", "badge.denied", "node.online",
                  "node.offline", "maintenance.due", "booking.created", "booking.cancelled"]
SCHEMAS["Webhook"] = {"type": "object", "required": ["id", "url", "events", "site"], "properties": {
    "id": {"type": "integer"}, "url": {"type": "string"}, "active": {"type": "boolean"},
    "events": {"type": "array", "items": {"enum": WEBHOOK_EVENTS}},
    "site": {"type": ["string", "null"]}, "created_at": {"type": "string"}}}
SCHEMAS["WebhookDelivery"] = {"type": "object", "required": ["id", "status"], "properties": {
    "id": {"type": "integer"}, "event_id": {"type": "string"}, "type": {"type": "string"},
    "status": {"enum": ["queued", "delivered", "failed", "refused"]},
    "attempts": {"type": "integer"}, "last_status": {"type": ["integer", "null"]},
    "last_error": {"type": ["string", "null"]}, "created_at": {"type": "string"},
    "delivered_at": {"type": ["string", "null"]}}}
PATHS["/webhooks"] = {
    "get": {"summary": "List webhooks", "responses": {**_list("Webhook"), **_errors()}},
    "post": {"summary": "Create a webhook (https, public address unless allowed)",
             "requestBody": _body({
                 "url": {"type": "string", "maxLength": 2000},
                 "secret": {"type": "string", "minLength": 16, "maxLength": 200},
                 "events": {"type": "array", "minItems": 1, "items": {"enum": WEBHOOK_EVENTS}},
                 "site": SLUG}, ["url", "secret", "events"]),
             "responses": {**_ok("Webhook", "201", "created"), **_errors(403)}},
}
PATHS["/webhooks/{webhook_id}"] = {
    "parameters": [_path("webhook_id")],
    "delete": {"summary": "Delete a webhook",
               "responses": {"204": {"description": "deleted"}, **_errors(404)}},
}
PATHS["/webhooks/{webhook_id}/deliveries"] = {
    "parameters": [_path("webhook_id")],
    "get": {"summary": "The delivery log (newest first, 100)",
            "responses": {**_list("WebhookDelivery"), **_errors(404)}},
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "fabpass REST API", "version": "1",
                 "description": "Members, badges, machines, trainings, sessions and reports. "
                                "A manager token reaches only its sites (and members without a "
                                "site): lists are filtered, another site's object answers 403."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": {**PATHS, **billing.PATHS, **integrations.PATHS},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {**SCHEMAS, **billing.SCHEMAS},
            "responses": {"Error": {"description": "error", **_json(
                {"$ref": "#/components/schemas/Error"})}},
        },
    }
