"""The server package's exception root and the domain errors the API maps to HTTP codes.

`NotFound` → 404, `Conflict` → 409, `Invalid` → 400 (with per-field messages),
`Forbidden` → 403. Services raise these; the web UI and the API translate them.
"""

from __future__ import annotations


class ServerError(Exception):
    """Root of every error the server raises on purpose."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServerError):
    code = "not_found"


class Conflict(ServerError):
    code = "conflict"


class Forbidden(ServerError):
    code = "forbidden"


class Invalid(ServerError):
    """Bad input; `fields` maps a field name to a message shown next to it."""

    code = "invalid"

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields: dict[str, str] = dict(fields or {})


__all__ = ["Conflict", "Forbidden", "Invalid", "NotFound", "ServerError"]
