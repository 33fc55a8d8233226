"""Which language a mail to a member is written in (issue 20).

One rule, used by every mail to a member ("when free", training expiring): the language of the
member's web login if it has one with a language (`User.locale`, set by the FR/EN switch), else
the server's default language (`FABPASS_DEFAULT_LANGUAGE`) if it names one we have, else French:
the product is French first, and a member without a login never chose.
"""

from __future__ import annotations

import os

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import User
from server.services.mail_templates import LANGS

FALLBACK = "fr"


def server_default(env: dict[str, str] | None = None) -> str | None:
    """The server's default language setting, if it names one we have; else None."""
    raw = (os.environ if env is None else env).get("FABPASS_DEFAULT_LANGUAGE", "")
    lang = raw.strip().lower()[:2]
    return lang if lang in LANGS else None


def member_language(db: Session, member_id: int, *, default: str | None = None) -> str:
    """The language of mails to this member. `default` overrides the environment's setting
    (tests, callers that hold the app's config)."""
    locales = db.scalars(select(User.locale).where(
        User.member_id == member_id, User.active.is_(True), User.locale.is_not(None))
        .order_by(User.last_login.desc().nulls_last(), User.id))
    for loc in locales:
        lang = (loc or "").strip().lower()[:2]
        if lang in LANGS:
            return lang
    if default in LANGS:
        return str(default)
    return server_default() or FALLBACK
