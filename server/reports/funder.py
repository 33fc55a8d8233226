"""The funder report: consortium totals with small counts masked.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.errors import N_
from server.models import (
    Member,
    Site,
)
from server.reports.periods import ReportError
from server.reports.queries import visits_report
from server.reports.rollups_read import usage_rows
from server.reports.sql import aware, site_id_of

MASK_BELOW = 5


MASKED = "<5"


def mask(n: int) -> int | str:
    """Counts of people from 1 to 4 are shown as "<5" so that nobody can be recognised."""
    return MASKED if 0 < n < MASK_BELOW else n


def funder_report(db: Session, since: datetime, until: datetime,
                  site: str | int | None = None) -> dict[str, Any]:
    """Aggregated activity for a period, for one site or the whole consortium.

    Every count of people (members, new members, visits, members per tag or machine family)
    and every session count under 5 is masked; a machine family used by fewer than 5 members
    has its hours masked too (hours of one person are personal data)."""
    since_a, until_a = aware(since), aware(until)
    assert since_a is not None and until_a is not None
    if until_a <= since_a:
        raise ReportError(N_("until must be after since"))
    site_id = site_id_of(db, site)
    # one pass over the cells by machine family; the totals are their sums and union
    kinds = usage_rows(db, ("kind",), since_a, until_a, site_id, with_member_sets=True)
    everyone: set[int] = set().union(*(r["_member_ids"] for r in kinds))
    tot: dict[str, Any] = {
        "sessions": sum(r["sessions"] for r in kinds),
        "hours": sum(r["hours"] for r in kinds),
        "active_hours": sum(r["active_hours"] for r in kinds),
        "members": len(everyone)}
    visits = visits_report(db, (), since_a, until_a, site_id)
    new_q = sa.select(sa.func.count()).select_from(Member).where(
        Member.created_at >= since_a, Member.created_at < until_a)
    if site_id is not None:
        new_q = new_q.where(Member.site_id == site_id)
    new_members = int(db.scalar(new_q) or 0)
    by_kind = []
    for r in kinds:
        small = r["members"] < MASK_BELOW
        by_kind.append({"kind": r["kind"], "members": mask(r["members"]),
                        "sessions": MASKED if small else mask(r["sessions"]),
                        "hours": MASKED if small else round(r["hours"], 1),
                        "active_hours": MASKED if small else round(r["active_hours"], 1)})
    by_tag = [{"tag": tag, "members": mask(n)}
              for tag, n in _members_by_tag(db, everyone)]
    site_slug = site_name = None
    if site_id is not None:
        row = db.execute(sa.select(Site.slug, Site.name).where(Site.id == site_id)).one()
        site_slug, site_name = row.slug, row.name
    summary = {
        "members": mask(tot["members"]),
        "new_members": mask(new_members),
        "visits": mask(int(visits[0]["visits"]) if visits else 0),
        "sessions": mask(tot["sessions"]),
        "hours": MASKED if 0 < tot["members"] < MASK_BELOW else round(tot["hours"], 1),
        "active_hours": (MASKED if 0 < tot["members"] < MASK_BELOW
                         else round(tot["active_hours"], 1)),
    }
    rows: list[dict[str, Any]] = [
        {"section": "summary", "key": k, "metric": k, "value": v} for k, v in summary.items()]
    for r in by_kind:
        rows += [{"section": "kind", "key": r["kind"], "metric": k, "value": r[k]}
                 for k in ("members", "sessions", "hours", "active_hours")]
    rows += [{"section": "tag", "key": r["tag"], "metric": "members", "value": r["members"]}
             for r in by_tag]
    return {"since": since_a, "until": until_a, "site": site_slug, "site_name": site_name,
            "summary": summary,
            "by_kind": by_kind, "by_tag": by_tag, "rows": rows}


FUNDER_COLUMNS = ("section", "key", "metric", "value")


def _members_by_tag(db: Session, ids: set[int]) -> list[tuple[str, int]]:
    """(tag, how many of `ids` carry it), by tag: the members' current tags, as the
    ``member_tag`` dimension counts them."""
    counts: dict[str, int] = {}
    if not ids:
        return []
    # the JSON text, decoded only for the members in `ids` that have tags
    q = sa.select(Member.id, sa.cast(Member.tags, sa.Text)).where(Member.tags.is_not(None))
    for mid, raw in db.execute(q):
        if mid in ids and raw and raw != "[]":
            for tag in set(json.loads(raw) if isinstance(raw, str | bytes) else raw):
                counts[str(tag)] = counts.get(str(tag), 0) + 1
    return sorted(counts.items())
