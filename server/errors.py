"""The server package's exception root and the domain errors the API maps to HTTP codes.

`NotFound` → 404, `Conflict` → 409, `Invalid` → 400 (with per-field messages),
`Forbidden` → 403. Services raise these; the web UI and the API translate them.
"""

from __future__ import annotations


def N_(template: str) -> str:
    """Marks an error template for translation (`pybabel extract -k N_`); returns it as is."""
    return template


class ServerError(Exception):
    """Root of every error the server raises on purpose.

    `message` is English (the API, the CLI and the logs show it). Built from a `template` with
    `%(name)s` placeholders and `params`, the web UI can show it in the user's language:
    `gettext(e.template, **e.params)`."""

    code = "error"

    def __init__(self, message: str, params: dict[str, object] | None = None, *,
                 fields: dict[str, str] | None = None) -> None:
        self.template = message
        self.params: dict[str, object] = dict(params or {})
        self.message = message % self.params if self.params else message
        # the input fields the error is about (field -> message template): a form shows each
        # next to its field, the API in `fields`; views never read `message` to decide
        self.fields: dict[str, str] = dict(fields or {})
        super().__init__(self.message)


class NotFound(ServerError):
    code = "not_found"


class Conflict(ServerError):
    code = "conflict"


class Forbidden(ServerError):
    code = "forbidden"


class Invalid(ServerError):
    """Bad input; `fields` maps a field name to a message shown next to it."""

    code = "invalid"

    def __init__(self, message: str, fields: dict[str, str] | None = None,
                 params: dict[str, object] | None = None) -> None:
        super().__init__(message, params, fields=fields)


__all__ = ["Conflict", "Forbidden", "Invalid", "N_", "NotFound", "ServerError"]
