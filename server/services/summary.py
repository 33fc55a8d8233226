"""The weekly summary for managers: hours per machine, refusals, unknown badges, maintenance.

Sent once per site and ISO week, for the week that has ended (any run of the alerts job in the
following week sends it; `notices_sent` keeps it to one). The summary counts in UTC weeks.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.models import (
    Event,
    Machine,
    Node,
    NoticeSent,
    Site,
    UnknownBadge,
    UsageSession,
)
from server.services import alerts, mail, mail_templates

KIND = "weekly_summary"


def last_week(now: datetime) -> tuple[datetime, datetime]:
    """[Monday 00:00, next Monday 00:00) UTC of the week before `now`'s week."""
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0,
                                                           microsecond=0)
    return monday - timedelta(days=7), monday


def site_summary(db: Session, site_id: int, start: datetime, end: datetime) -> dict[str, object]:
    hours = db.execute(
        select(Machine.name, func.coalesce(func.sum(UsageSession.duration_s), 0.0))
        .join(UsageSession, UsageSession.machine_id == Machine.id)
        .where(Machine.site_id == site_id, UsageSession.started_at >= start,
               UsageSession.started_at < end)
        .group_by(Machine.name).order_by(Machine.name)).all()
    node_ids = select(Node.id).where(Node.site_id == site_id)
    refusals = db.scalar(select(func.count()).select_from(Event).where(
        Event.type == "badge.denied", Event.node_id.in_(node_ids), Event.ts >= start,
        Event.ts < end)) or 0
    unknown = db.scalar(select(func.count()).select_from(UnknownBadge).where(
        UnknownBadge.last_node_id.in_(node_ids), UnknownBadge.last_seen >= start,
        UnknownBadge.last_seen < end)) or 0
    return {"hours": [(name, round(float(s or 0.0) / 3600.0, 1)) for name, s in hours],
            "refusals": int(refusals), "unknown": int(unknown)}


def hours_of(data: dict[str, object]) -> list[tuple[str, float]]:
    hours = data["hours"]
    assert isinstance(hours, list)
    return hours


def weekly_summaries(db: Session, now: datetime, *, public_url: str = "") -> int:
    """Queue last week's summary for every site's managers, once (commits)."""
    from server.services.maintenance import due_maintenance

    start, end = last_week(now)
    week = start.strftime("%G-W%V")
    due = due_maintenance(db)
    sent = 0
    for site in db.scalars(select(Site)):
        key = f"{KIND}:{site.id}:{week}"
        if db.get(NoticeSent, key) is not None:
            continue
        data = site_summary(db, site.id, start, end)
        machines = {m.id: m.name for m in db.scalars(select(Machine).where(
            Machine.site_id == site.id))}
        maint = [f"{machines[mid]}: {r['name']} ({r['state']})" for mid, rows in due.items()
                 if mid in machines for r in rows]
        for email, locale in alerts.recipients(db, site.id, KIND):
            lang = locale if locale in mail_templates.LANGS else "en"
            lines = [f"- {name}: {h} h" for name, h in hours_of(data)] or ["-"]
            body = "\n".join([
                *lines, "",
                ("Refusals" if lang == "en" else "Refus") + f": {data['refusals']}",
                ("Unknown badges" if lang == "en" else "Badges inconnus") + f": {data['unknown']}",
                ("Maintenance" if lang == "en" else "Entretien") + ": "
                + (", ".join(maint) or "-")])
            title = (f"{site.name}, week {week}" if lang == "en"
                     else f"{site.name}, semaine {week}")
            subject, text, html = mail_templates.render(
                "weekly_summary", lang, title=title, body=body,
                link=f"{public_url.rstrip('/')}/reports/" if public_url else "")
            mail.enqueue(db, email, subject, text, html, kind=KIND)
            sent += 1
        db.add(NoticeSent(key=key, sent_at=now))
    db.commit()
    return sent
