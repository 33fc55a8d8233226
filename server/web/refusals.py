"""Refusals in words: the sentence a member page, a machine page and the dashboard show.

"Refusé sur la découpeuse laser le 3 déc. : formation expirée le 30 nov." The reason codes get
their labels here (one small dict, in both languages) until the labels module of issue 15 part B
takes them over; the words are built by `sentence`, the data comes from
`server.services.refusals`. Pages call `recent_refusals(...)` from their template, scoped to the
viewer's sites by the one scope rule (`auth.managed_site_ids`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from flask_babel import format_date
from flask_babel import gettext as _
from markupsafe import Markup, escape

from server import auth
from server.app import get_db
from server.reports.periods import zone_name
from server.services import refusals as refusal_service
from server.web import labels
from server.web.blueprint import shared


def reason_label(code: str | None) -> str:
    """The refusal reason in words (the one table of labels: server/web/labels.py)."""
    return labels.label("deny_reason", code) if code else "—"


def _zone(d: dict[str, Any]) -> ZoneInfo | None:
    """The zone the refusal's days are counted in: its machine's site (a refusal at 00:30 in
    Paris is on the Paris day, whatever zone the server runs in), by the reports' rule for a
    zone this system does not know (`zone_name`); None (no machine): the pages' zone."""
    machine = d.get("machine")
    site = machine.site if machine is not None else None
    return ZoneInfo(zone_name(site.timezone)) if site is not None else None


def _day(value: datetime, zone: ZoneInfo | None) -> str:
    if zone is not None and isinstance(value, datetime) and value.tzinfo is not None:
        return format_date(value.astimezone(zone).date(), "d MMM")
    return format_date(value, "d MMM")


def because(d: dict[str, Any]) -> str:
    """The reason part: "training expired on 30 Nov", "training withdrawn on 2 Dec (why)"."""
    label = reason_label(d["reason"])
    if d.get("date") is not None:
        label = _("%(reason)s on %(date)s", reason=label, date=_day(d["date"], _zone(d)))
    if d.get("why"):
        label = _("%(reason)s (%(why)s)", reason=label, why=d["why"])
    return label


def sentence(d: dict[str, Any], *, with_member: bool = False) -> Markup:
    """One refusal as a sentence, escaped (names and reasons are text, never markup)."""
    machine = d["machine"].name if d.get("machine") is not None else _("a machine")
    when = _day(d["at"], _zone(d))
    text = _("Refused on %(machine)s on %(date)s: %(reason)s", machine=machine, date=when,
             reason=because(d))
    if with_member:
        who = d["member"].name if d.get("member") is not None else _("unknown badge")
        text = f"{who} — {text}"
    return escape(text)


def recent_refusals(*, member_id: int | None = None, machine_id: int | None = None,
                    limit: int = 5) -> list[dict[str, Any]]:
    """The latest refusals the viewer may see, described, with their sentence."""
    db = get_db()
    rows = refusal_service.last_refusals(db, member_id=member_id, machine_id=machine_id,
                                         site_ids=auth.managed_site_ids(auth.me()), limit=limit)
    out = []
    for r in rows:
        d = refusal_service.describe(db, r)
        d["text"] = sentence(d, with_member=member_id is None)
        d["uid"] = r.uid
        out.append(d)
    return out


LAST_REFUSAL_TTL_S = 1.0


def last_refusal_texts(limit: int = 1) -> list[Markup]:
    """The dashboard card's sentences: `recent_refusals`' texts, shared for a second by the
    viewers of the same sites in the same language (`blueprint.shared`; the card was a
    fifth of the dashboard's CPU, polled by every open browser)."""
    from flask_babel import get_locale

    sites = auth.managed_site_ids(auth.me())
    key = (limit, None if sites is None else frozenset(sites), str(get_locale()))
    return list(shared("last_refusals", key, LAST_REFUSAL_TTL_S,
                       lambda: [d["text"] for d in recent_refusals(limit=limit)]))


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(recent_refusals=recent_refusals, reason_label=reason_label,
                                 last_refusal_texts=last_refusal_texts)
