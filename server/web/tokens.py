"""The CSRF token every page's forms carry, signed once per session rather than once per page.

Flask-WTF's `generate_csrf` signs the session's raw token with a timestamp on every request
(itsdangerous' dump_payload and HMAC: 4 % of a page's CPU, issue 21). With
`WTF_CSRF_TIME_LIMIT = None` (our setting: valid for the session's lifetime) the timestamp is
never checked, so a token signed earlier for the same raw token and secret is exactly as valid
and tells nothing more: it is kept, per process, and handed out again. A new session (login,
logout) has a new raw token, hence a new signed one. With a time limit set, every page signs
afresh as before.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, g, session
from flask_wtf.csrf import generate_csrf

_CACHE_KEY = "fabpass.web.signed_csrf"
MAX_TOKENS = 4096  # open sessions of one process; past that, start again


def csrf_token() -> str:
    """The signed CSRF token for this request (templates call `csrf_token()`)."""
    config = current_app.config
    field = config.get("WTF_CSRF_FIELD_NAME") or "csrf_token"
    if field in g:
        return str(g.get(field))
    raw = session.get(field)
    if config.get("WTF_CSRF_TIME_LIMIT") is not None or not isinstance(raw, str):
        return str(generate_csrf())
    key = (config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key, raw)
    cache: dict[Any, str] = current_app.extensions.setdefault(_CACHE_KEY, {})
    token = cache.get(key)
    if token is None:
        token = str(generate_csrf())
        if len(cache) >= MAX_TOKENS:
            cache.clear()
        cache[key] = token
    else:
        setattr(g, field, token)  # what generate_csrf caches: forms of this page reuse it
    return token
