"""Usage reports computed in SQL (GROUP BY in the database, never session by session in Python).

Semantics (see docs/reports.md):

- Only closed sessions (``ended_at`` set) are counted; open ones are left out.
- A session's hours are split across the periods it spans in proportion to wall-clock overlap
  and clipped to ``since``/``until``. The amount split is ``duration_s`` (the node's monotonic
  figure, authoritative); active hours are split in the same proportion. A session whose wall
  clock span is zero or negative (skewed clock) falls wholly in the period where it starts.
- A session counts as one session in the period where it starts (and not at all if it started
  before ``since``); ``members`` counts distinct members with any time in the group.
- Periods (day, ISO week, month) are in the time zone of the machine's site: a small calendar
  table is generated in Python with zoneinfo for the requested range and joined on overlap.
"""

from __future__ import annotations

import csv
import io
import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.models import (
    Event,
    Machine,
    MachineGroup,
    Member,
    Site,
    UsageSession,
    UTCDateTime,
    machine_group_members,
)

log = logging.getLogger(__name__)

TIME_DIMENSIONS = ("day", "week", "month")
DIMENSIONS = ("machine", "machine_group", "member", "member_tag", "site", "kind", *TIME_DIMENSIONS)
METRICS = ("sessions", "hours", "active_hours", "members")
# Longest period of each kind plus a DST hour: bounds the calendar join so it uses the index.
_PERIOD_MAX = {"day": timedelta(hours=26), "week": timedelta(days=7, hours=2),
               "month": timedelta(days=31, hours=2)}


class ReportError(ValueError):
    """A report was asked with a bad parameter (unknown dimension, site, inverted range)."""


# ---------------------------------------------------------------- calendar


def _local_floor(local: datetime, kind: str) -> date:
    d = local.date()
    if kind == "month":
        return d.replace(day=1)
    if kind == "week":
        return d - timedelta(days=d.weekday())
    return d


def _next(d: date, kind: str) -> date:
    if kind == "month":
        return date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    if kind == "week":
        return d + timedelta(days=7)
    return d + timedelta(days=1)


def period_key(d: date, kind: str) -> str:
    """The label of the period starting on local date `d`: 2026-11, 2026-W47, 2026-11-22."""
    if kind == "month":
        return f"{d.year:04d}-{d.month:02d}"
    if kind == "week":
        iso = d.isocalendar()
        return f"{iso.year:04d}-W{iso.week:02d}"
    return d.isoformat()


def calendar(tz: str, kind: str, since: datetime, until: datetime) -> list[tuple[str, datetime, datetime]]:
    """Periods of `kind` in zone `tz` covering [since, until), as (key, utc start, utc end),
    clipped to the range so that summing overlaps clips the sessions too."""
    zone = ZoneInfo(tz)
    out: list[tuple[str, datetime, datetime]] = []
    d = _local_floor(since.astimezone(zone), kind)
    for _ in range(100_000):  # bounded: 270 years of days
        start = datetime(d.year, d.month, d.day, tzinfo=zone).astimezone(UTC)
        if start >= until:
            break
        nd = _next(d, kind)
        end = datetime(nd.year, nd.month, nd.day, tzinfo=zone).astimezone(UTC)
        out.append((period_key(d, kind), max(start, since), min(end, until)))
        d = nd
    return out


# ---------------------------------------------------------------- SQL helpers


def _epoch(dialect: str, col: Any) -> Any:
    """Seconds since 1970 of a naive-UTC datetime column, portably."""
    if dialect == "sqlite":
        return (sa.func.julianday(col) - 2440587.5) * 86400.0
    return sa.func.date_part("epoch", col, type_=sa.Float)  # double precision, not numeric


def _least(a: Any, b: Any) -> Any:
    return sa.case((a < b, a), else_=b)


def _greatest(a: Any, b: Any) -> Any:
    return sa.case((a > b, a), else_=b)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _dims(group_by: str | Sequence[str]) -> list[str]:
    dims = [d.strip() for d in group_by.split(",")] if isinstance(group_by, str) else list(group_by)
    dims = [d for d in dims if d]
    if not dims:
        raise ReportError("group_by: at least one dimension is needed")
    for d in dims:
        if d not in DIMENSIONS:
            raise ReportError(f"group_by: unknown dimension {d!r} (one of {', '.join(DIMENSIONS)})")
    if len([d for d in dims if d in TIME_DIMENSIONS]) > 1:
        raise ReportError("group_by: at most one of day, week, month")
    if len(set(dims)) != len(dims):
        raise ReportError("group_by: a dimension is repeated")
    return dims


def _site_id(db: Session, site: str | int | None) -> int | None:
    if site is None or site == "":
        return None
    if isinstance(site, int):
        return site
    sid = db.scalar(sa.select(Site.id).where(Site.slug == site))
    if sid is None:
        raise ReportError(f"site: no site {site!r}")
    return int(sid)


def _data_range(db: Session, site_id: int | None) -> tuple[datetime, datetime] | None:
    s = UsageSession.__table__
    q = sa.select(sa.func.min(s.c.started_at), sa.func.max(s.c.ended_at)).where(
        s.c.ended_at.is_not(None))
    if site_id is not None:
        m = Machine.__table__
        q = q.select_from(s.join(m, m.c.id == s.c.machine_id)).where(m.c.site_id == site_id)
    lo, hi = db.execute(q).one()
    if lo is None or hi is None:
        return None
    lo, hi = _aware(lo), _aware(hi)
    assert lo is not None and hi is not None
    return lo, max(hi, lo) + timedelta(seconds=1)


class _Calendar:
    """A temporary table of periods per site, created for one query and dropped after."""

    def __init__(self, db: Session, kind: str, since: datetime, until: datetime,
                 site_id: int | None) -> None:
        self.db = db
        self.table = sa.Table(
            f"tmp_report_periods_{uuid.uuid4().hex[:10]}", sa.MetaData(),
            sa.Column("site_id", sa.Integer, nullable=False),
            sa.Column("pkey", sa.String(16), nullable=False),
            sa.Column("p_start", UTCDateTime(), nullable=False),
            sa.Column("p_end", UTCDateTime(), nullable=False),
            prefixes=["TEMPORARY"],
        )
        sa.Index(f"ix_{self.table.name}", self.table.c.site_id, self.table.c.p_start)
        q = sa.select(Site.id, Site.timezone)
        if site_id is not None:
            q = q.where(Site.id == site_id)
        self.rows = [
            {"site_id": sid, "pkey": key, "p_start": a, "p_end": b}
            for sid, tz in db.execute(q).all()
            for key, a, b in calendar(tz or "UTC", kind, since, until)
        ]

    def __enter__(self) -> sa.Table:
        conn = self.db.connection()
        self.table.create(conn)
        if self.rows:
            conn.execute(self.table.insert(), self.rows)
        return self.table

    def __exit__(self, *exc: object) -> None:
        try:
            self.table.drop(self.db.connection())
        except Exception:  # the transaction may be aborted; the temp table dies with it
            log.debug("could not drop %s", self.table.name, exc_info=True)


# ---------------------------------------------------------------- usage report


def usage_report(
    db: Session,
    group_by: str | Sequence[str],
    since: datetime | None = None,
    until: datetime | None = None,
    site: str | int | None = None,
) -> list[dict[str, Any]]:
    """Rows of `sessions`, `hours`, `active_hours`, `members` per group.

    `group_by` is one of (or a comma-separated list / sequence of) ``machine`` (slug),
    ``machine_group`` (slug), ``member`` (id), ``member_tag``, ``site`` (slug), ``kind``
    (machine family) and one of ``day``/``week``/``month`` (labels in the site's time zone).
    """
    dims = _dims(group_by)
    since, until = _aware(since), _aware(until)
    if since is not None and until is not None and until <= since:
        raise ReportError("until must be after since")
    site_id = _site_id(db, site)
    time_dim = next((d for d in dims if d in TIME_DIMENSIONS), None)
    if time_dim is None:
        return _run(db, dims, since, until, site_id, None)
    if since is None or until is None:
        rng = _data_range(db, site_id)
        if rng is None:
            return []
        since = since or rng[0]
        until = until or rng[1]
        if until <= since:
            return []
    with _Calendar(db, time_dim, since, until, site_id) as periods:
        return _run(db, dims, since, until, site_id, (periods, time_dim))


def _run(db: Session, dims: list[str], since: datetime | None, until: datetime | None,
         site_id: int | None, cal: tuple[sa.Table, str] | None) -> list[dict[str, Any]]:
    dialect = db.get_bind().dialect.name
    s = UsageSession.__table__.alias("s")
    m = Machine.__table__.alias("m")
    frm: Any = s.join(m, m.c.id == s.c.machine_id)
    where: list[Any] = [s.c.ended_at.is_not(None)]
    if site_id is not None:
        where.append(m.c.site_id == site_id)

    if cal is not None:
        p, kind = cal
        lo: Any = p.c.p_start
        hi: Any = p.c.p_end
        frm = frm.join(p, sa.and_(
            p.c.site_id == m.c.site_id,
            p.c.p_start <= s.c.ended_at,
            p.c.p_end > s.c.started_at,
            # bounds the index range scan to the few periods a session can touch
            p.c.p_start > s.c.started_at - sa.literal_column(
                f"interval '{int(_PERIOD_MAX[kind].total_seconds())} seconds'") if dialect != "sqlite"
            else p.c.p_start > sa.func.datetime(
                s.c.started_at, f"-{int(_PERIOD_MAX[kind].total_seconds())} seconds"),
        ))
    else:
        lo = sa.literal(since, UTCDateTime()) if since is not None else None
        hi = sa.literal(until, UTCDateTime()) if until is not None else None
        if lo is not None:
            where.append(s.c.ended_at >= lo)
        if hi is not None:
            where.append(s.c.started_at < hi)
    if lo is not None:
        # a session merely touching the period's start is out, a zero-length one starting there in
        where.append(sa.or_(s.c.ended_at > lo, s.c.started_at >= lo))

    start_e = _epoch(dialect, s.c.started_at)
    end_e = _epoch(dialect, s.c.ended_at)
    wall = end_e - start_e
    clip_start = start_e if lo is None else _epoch(dialect, _greatest(s.c.started_at, lo))
    clip_end = end_e if hi is None else _epoch(dialect, _least(s.c.ended_at, hi))
    if lo is None and hi is None:
        frac: Any = sa.literal(1.0)
    else:
        frac = sa.case((wall > 0, (clip_end - clip_start) / wall), else_=1.0)
    starts_in: list[Any] = []
    if lo is not None:
        starts_in.append(s.c.started_at >= lo)
    if hi is not None:
        starts_in.append(s.c.started_at < hi)
    session_count = (sa.func.sum(sa.case((sa.and_(*starts_in), 1), else_=0)) if starts_in
                     else sa.func.count())
    duration = sa.func.coalesce(s.c.duration_s, sa.case((wall > 0, wall), else_=0.0))

    keys: list[Any] = []
    for d in dims:
        if d == "machine":
            keys.append(m.c.slug.label("machine"))
        elif d == "kind":
            keys.append(m.c.kind.label("kind"))
        elif d == "member":
            keys.append(s.c.member_id.label("member"))
        elif d == "site":
            st = Site.__table__.alias("st")
            frm = frm.join(st, st.c.id == m.c.site_id)
            keys.append(st.c.slug.label("site"))
        elif d == "machine_group":
            mg = machine_group_members.alias("mg")
            g = MachineGroup.__table__.alias("g")
            frm = frm.join(mg, mg.c.machine_id == m.c.id).join(g, g.c.id == mg.c.group_id)
            keys.append(g.c.slug.label("machine_group"))
        elif d == "member_tag":
            mem = Member.__table__.alias("mem")
            frm = frm.join(mem, mem.c.id == s.c.member_id)
            tags = _json_elements(dialect, mem.c.tags)
            frm = frm.join(tags, sa.true())
            keys.append(tags.c.value.label("member_tag"))
        else:
            assert cal is not None
            keys.append(cal[0].c.pkey.label(d))

    q = (
        sa.select(
            *keys,
            session_count.label("sessions"),
            (sa.func.sum(duration * frac) / 3600.0).label("hours"),
            (sa.func.sum(sa.func.coalesce(s.c.active_s, 0.0) * frac) / 3600.0).label("active_hours"),
            sa.func.count(sa.distinct(s.c.member_id)).label("members"),
        )
        .select_from(frm)
        .where(*where)
        .group_by(*keys)
        .order_by(*keys)
    )
    rows = []
    for r in db.execute(q).mappings():
        row = dict(r)
        row["sessions"] = int(row["sessions"] or 0)
        row["hours"] = round(float(row["hours"] or 0.0), 4)
        row["active_hours"] = round(float(row["active_hours"] or 0.0), 4)
        row["members"] = int(row["members"] or 0)
        if "kind" in row and row["kind"] is not None:
            row["kind"] = str(getattr(row["kind"], "value", row["kind"]))
        rows.append(row)
    return rows


def _json_elements(dialect: str, col: Any) -> Any:
    """A table-valued function giving one row (`value`) per element of a JSON list."""
    if dialect == "sqlite":
        return sa.func.json_each(col).table_valued("value").alias("tag")
    return sa.func.json_array_elements_text(col).table_valued("value").alias("tag")


# ---------------------------------------------------------------- CSV


def rows_to_csv(rows: Iterable[dict[str, Any]], group_by: str | Sequence[str] | None = None,
                columns: Sequence[str] | None = None) -> str:
    """The same columns as the JSON rows: group keys first, then the metrics."""
    rows = list(rows)
    if columns is None:
        dims = _dims(group_by) if group_by else []
        extra = [k for r in rows[:1] for k in r if k not in dims and k not in METRICS]
        columns = [*dims, *METRICS, *extra]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    return buf.getvalue()


__all__ = [
    "DIMENSIONS", "METRICS", "ReportError", "TIME_DIMENSIONS", "calendar", "period_key",
    "rows_to_csv", "usage_report", "Event",
]
