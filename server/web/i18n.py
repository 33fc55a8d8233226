"""Templates' `_()` with the request's translations looked up once, not on every call.

Flask-Babel's template callables run `get_translations()` for every string: three walks to the
request context through `g`, and the locale turned to a string for the cache key, each time
(about forty strings on the dashboard: a twentieth of its CPU, issue 21). The translations are
kept on Flask-Babel's own per-request namespace, next to the locale and domain they were made
for, and made again whenever either changes (`force_locale`, `refresh`): the same text as before.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g
from flask_babel import get_translations


def translations() -> Any:
    """This request's translations (Flask-Babel's), looked up once per locale and domain."""
    try:
        ctx = g.get("_flask_babel")
    except RuntimeError:  # outside an app context: Flask-Babel's answer (none)
        return get_translations()
    memo = getattr(ctx, "fabpass_translations", None) if ctx is not None else None
    if (memo is not None and memo[0] is getattr(ctx, "babel_locale", None)
            and memo[1] is getattr(ctx, "babel_domain", None)):
        return memo[2]
    found = get_translations()  # sets the request's locale and domain when not yet chosen
    ctx = g.get("_flask_babel")
    locale = getattr(ctx, "babel_locale", None)
    if ctx is not None and locale is not None:
        ctx.fabpass_translations = (locale, getattr(ctx, "babel_domain", None), found)
    return found


def install(app: Flask) -> None:
    """Replace the callables Flask-Babel installed in the templates (after `babel.init_app`)."""
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda s: translations().ugettext(s),
        ngettext=lambda s, p, n: translations().ungettext(s, p, n),
        pgettext=lambda c, s: translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: translations().unpgettext(c, s, p, n),
        newstyle=True,
    )
