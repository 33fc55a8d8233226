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
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server import rollups
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
from server.rollups import TIME_DIMENSIONS, next_month, period_key, sort_rows

log = logging.getLogger(__name__)

DIMENSIONS = ("machine", "machine_group", "member", "member_tag", "site", "kind", *TIME_DIMENSIONS)
METRICS = ("sessions", "hours", "active_hours", "members")
# Longest period of each kind plus a DST hour: bounds the calendar join so it uses the index.
_PERIOD_MAX = {"day": timedelta(hours=26), "week": timedelta(days=7, hours=2),
               "month": timedelta(days=31, hours=2)}


class ReportError(ValueError):
    """A report was asked with a bad parameter (unknown dimension, site, inverted range)."""


MAX_PERIODS = 50_000  # calendar rows per report: 20 years of days at 6 sites
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


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
        return next_month(d)
    if kind == "week":
        return d + timedelta(days=7)
    return d + timedelta(days=1)


def calendar(tz: str, kind: str, since: datetime, until: datetime) -> list[tuple[str, datetime, datetime]]:
    """Periods of `kind` in zone `tz` covering [since, until), as (key, utc start, utc end),
    clipped to the range so that summing overlaps clips the sessions too."""
    zone = ZoneInfo(tz)
    out: list[tuple[str, datetime, datetime]] = []
    d = _local_floor(since.astimezone(zone), kind)
    for _ in range(MAX_PERIODS + 1):
        if len(out) >= MAX_PERIODS:
            raise ReportError(f"too many {kind}s in the range: narrow it or group by a longer period")
        start = datetime(d.year, d.month, d.day, tzinfo=zone).astimezone(UTC)
        if start >= until:
            break
        nd = _next(d, kind)
        end = datetime(nd.year, nd.month, nd.day, tzinfo=zone).astimezone(UTC)
        out.append((period_key(d, kind), max(start, since), min(end, until)))
        d = nd
    return out


def _week_of(day_key: str) -> str:
    return period_key(date.fromisoformat(day_key), "week")


# ---------------------------------------------------------------- SQL helpers


def _epoch(dialect: str, col: Any) -> Any:
    """Seconds since 1970 of a naive-UTC datetime column, portably."""
    if dialect == "sqlite":
        return (sa.func.julianday(col) - 2440587.5) * 86400.0
    return sa.func.date_part("epoch", col, type_=sa.Float)  # double precision, not numeric


def _shift(dialect: str, col: Any, delta: timedelta) -> Any:
    """`col + delta` for a datetime column, portably (SQLite keeps its text format)."""
    secs = int(delta.total_seconds())
    if dialect == "sqlite":
        return sa.func.strftime("%Y-%m-%d %H:%M:%f", col, f"{secs:+d} seconds")
    return col + sa.literal_column(f"interval '{secs} seconds'")


def _noindex(dialect: str, col: Any) -> Any:
    """Keeps SQLite from driving the join by a sessions index (one scan of sessions, probing the
    small calendar by index, is the fast order)."""
    if dialect == "sqlite":
        return sa.func.coalesce(col, col, type_=col.type)
    if isinstance(col.type, sa.Integer):
        return col + 0
    return col


def _least(a: Any, b: Any) -> Any:
    return sa.case((a < b, a), else_=b)


def _greatest(a: Any, b: Any) -> Any:
    return sa.case((a > b, a), else_=b)


def _aware(value: datetime | None) -> datetime | None:
    """UTC-aware, within 1970-2200 (a wider range cannot be in the data and would overflow
    time zone arithmetic)."""
    if value is None:
        return None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    if not EARLIEST <= value <= LATEST:
        raise ReportError("since/until: between 1900 and 2200")
    return value


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


def _zone_name(tz: str | None) -> str:
    """A site's zone, or UTC if it is unknown to this system (logged: the report stays usable)."""
    name = rollups.zone_name(tz)
    if name != (tz or "UTC"):
        log.warning("unknown time zone %r: reporting that site in UTC", tz)
    return name


class _Calendar:
    """A temporary table of periods per site, created for one query and dropped after."""

    def __init__(self, db: Session, kind: str, since: datetime, until: datetime,
                 site_id: int | None) -> None:
        self.db = db
        self.kind = kind
        self.table = sa.Table(
            f"tmp_report_periods_{uuid.uuid4().hex[:10]}", sa.MetaData(),
            sa.Column("pid", sa.Integer, nullable=False),
            sa.Column("site_id", sa.Integer, nullable=False),
            sa.Column("pkey", sa.String(16), nullable=False),
            sa.Column("week", sa.String(10), nullable=False),  # of a day period (visits)
            sa.Column("p_start", UTCDateTime(), nullable=False),
            sa.Column("p_end", UTCDateTime(), nullable=False),
            prefixes=["TEMPORARY"],
        )
        sa.Index(f"ix_{self.table.name}", self.table.c.site_id, self.table.c.p_start)
        q = sa.select(Site.id, Site.timezone)
        if site_id is not None:
            q = q.where(Site.id == site_id)
        self.rows = [
            {"site_id": sid, "pkey": key, "p_start": a, "p_end": b,
             "week": _week_of(key) if kind == "day" else key}
            for sid, tz in db.execute(q).all()
            for key, a, b in calendar(_zone_name(tz), kind, since, until)
        ]
        if len(self.rows) > MAX_PERIODS:
            raise ReportError(f"too many {kind}s in the range: narrow it or group by a longer period")
        # the same period has the same number at every site (its label may start at different
        # instants): grouping by it merges sites, as grouping by the label would
        numbers = {k: i for i, k in enumerate(sorted({str(r["pkey"]) for r in self.rows}))}
        for row in self.rows:
            row["pid"] = numbers[str(row["pkey"])]
        self.labels = {i: k for k, i in numbers.items()}

    def __enter__(self) -> _Calendar:
        conn = self.db.connection()
        self.table.create(conn)
        if self.rows:
            conn.execute(self.table.insert(), self.rows)
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(f"ANALYZE {self.table.name}"))
        return self

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
    *,
    member_id: int | None = None,
    machine_id: int | None = None,
    use_rollups: bool = True,
) -> list[dict[str, Any]]:
    """Rows of `sessions`, `hours`, `active_hours`, `members` per group.

    `group_by` is one of (or a comma-separated list / sequence of) ``machine`` (slug),
    ``machine_group`` (slug), ``member`` (id), ``member_tag``, ``site`` (slug), ``kind``
    (machine family) and one of ``day``/``week``/``month`` (labels in the site's time zone).

    Reports without a member dimension or filter read the roll-up cells (`server.rollups`);
    ``use_rollups=False`` computes everything from the sessions in SQL (the reference the
    roll-ups are tested against, and the path for member dimensions).
    """
    dims = _dims(group_by) if group_by != () else []
    since, until = _aware(since), _aware(until)
    filters = {"member_id": member_id, "machine_id": machine_id}
    if since is not None and until is not None and until <= since:
        raise ReportError("until must be after since")
    site_id = _site_id(db, site)
    if use_rollups and member_id is None and all(d in rollups.ROLLUP_DIMENSIONS for d in dims):
        return rollups.usage_rows(db, dims, since, until, site_id, machine_id)
    time_dim = next((d for d in dims if d in TIME_DIMENSIONS), None)
    if time_dim is None:
        return _run(db, dims, since, until, site_id, None, filters)
    if since is None or until is None:
        rng = _data_range(db, site_id)
        if rng is None:
            return []
        since = since or rng[0]
        until = until or rng[1]
        if until <= since:
            return []
    with _Calendar(db, time_dim, since, until, site_id) as cal:
        return _run(db, dims, since, until, site_id, cal, filters)


def _run(db: Session, dims: list[str], since: datetime | None, until: datetime | None,
         site_id: int | None, cal: _Calendar | None,
         filters: dict[str, int | None] | None = None) -> list[dict[str, Any]]:
    dialect = db.get_bind().dialect.name
    s = UsageSession.__table__.alias("s")
    m = Machine.__table__.alias("m")
    frm: Any = s.join(m, m.c.id == _noindex(dialect, s.c.machine_id))
    where: list[Any] = [s.c.ended_at.is_not(None)]
    if site_id is not None:
        where.append(m.c.site_id == site_id)
    for col, value in (filters or {}).items():
        if value is not None:
            where.append(s.c[col] == value)

    if cal is not None:
        p, kind = cal.table, cal.kind
        lo: Any = p.c.p_start
        hi: Any = p.c.p_end
        frm = frm.join(p, sa.and_(
            p.c.site_id == m.c.site_id,
            p.c.p_end > _noindex(dialect, s.c.started_at),
            # a period touching a session starts at most one period length before it: this
            # bounds the probe of the calendar's (site_id, p_start) index to one or two rows
            p.c.p_start > _shift(dialect, _noindex(dialect, s.c.started_at), -_PERIOD_MAX[kind]),
        ))
    else:
        lo = sa.literal(since, UTCDateTime()) if since is not None else None
        hi = sa.literal(until, UTCDateTime()) if until is not None else None
        # no index helps here (a session may start long before `since`): one sequential scan
        # beats walking most of the table through the started_at index
        if hi is not None:
            where.append(_noindex(dialect, s.c.started_at) < hi)
    if lo is not None:
        # a session merely touching the period's start is out, a zero-length one starting there
        # in (and a skewed one, ending before it starts, counts where it starts)
        where.append(sa.or_(_noindex(dialect, s.c.ended_at) > lo,
                            _noindex(dialect, s.c.started_at) >= lo))

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

    # group by integer ids where a label is only a name (cheaper to sort than text), and map
    # them to slugs / period labels afterwards: a few thousand rows at most
    keys: list[Any] = []
    labels: dict[str, dict[Any, Any]] = {}
    for d in dims:
        if d in TIME_DIMENSIONS:
            assert cal is not None
            keys.append(cal.table.c.pid.label(d))
            labels[d] = cal.labels
        elif d == "machine":
            # not the bare column: SQLite would walk the machine index to skip a sort, and
            # fetch the rows in random order
            keys.append(_noindex(dialect, s.c.machine_id).label(d))
            labels[d] = dict(db.execute(sa.select(Machine.id, Machine.slug)).all())
        elif d == "member":
            keys.append(_noindex(dialect, s.c.member_id).label(d))
        elif d == "site":
            keys.append(m.c.site_id.label(d))
            labels[d] = dict(db.execute(sa.select(Site.id, Site.slug)).all())
        else:
            frm, key = _dimension(dialect, d, frm, s, m)
            keys.append(key)

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
    )
    if dialect == "postgresql":
        # sorts and hashes of a million rows in memory rather than in temporary files
        db.execute(sa.text("SET LOCAL work_mem = '128MB'"))
    rows = []
    for r in db.execute(q).mappings():
        row = dict(r)
        for d, names in labels.items():
            row[d] = names.get(row[d], row[d])
        row["sessions"] = int(row["sessions"] or 0)
        row["hours"] = round(float(row["hours"] or 0.0), 4)
        row["active_hours"] = round(float(row["active_hours"] or 0.0), 4)
        row["members"] = int(row["members"] or 0)
        if "kind" in row and row["kind"] is not None:
            row["kind"] = str(getattr(row["kind"], "value", row["kind"]))
        rows.append(row)
    sort_rows(rows, dims)
    return rows


def _json_elements(dialect: str, col: Any) -> Any:
    """A table-valued function giving one row (`value`) per element of a JSON list."""
    if dialect == "sqlite":
        return sa.func.json_each(col).table_valued("value").alias("tag")
    return sa.func.json_array_elements_text(col).table_valued("value").alias("tag")


# ---------------------------------------------------------------- visits, denied attempts


def visits_report(db: Session, group_by: str | Sequence[str] = (), since: datetime | None = None,
                  until: datetime | None = None, site: str | int | None = None,
                  *, use_rollups: bool = True) -> list[dict[str, Any]]:
    """Visits = distinct (member, day in the site's time zone) among closed sessions *starting*
    in [since, until). Groups: any non-time dimension, plus ``day``, ``week`` or ``month``."""
    dims = _dims(group_by) if group_by not in ((), "", None) else []
    since, until = _aware(since), _aware(until)
    if since is not None and until is not None and until <= since:
        raise ReportError("until must be after since")
    site_id = _site_id(db, site)
    if use_rollups and all(d in rollups.ROLLUP_DIMENSIONS for d in dims):
        return rollups.visits_rows(db, dims, since, until, site_id)
    if since is None or until is None:
        rng = _data_range(db, site_id)
        if rng is None:
            return []
        since, until = since or rng[0], until or rng[1]
    if until <= since:
        raise ReportError("until must be after since")
    dialect = db.get_bind().dialect.name
    with _Calendar(db, "day", since, until, site_id) as cal:
        p = cal.table
        s = UsageSession.__table__.alias("s")
        m = Machine.__table__.alias("m")
        frm: Any = s.join(m, m.c.id == _noindex(dialect, s.c.machine_id)).join(p, sa.and_(
            p.c.site_id == m.c.site_id,
            p.c.p_start <= _noindex(dialect, s.c.started_at),
            p.c.p_end > _noindex(dialect, s.c.started_at),
            p.c.p_start > _shift(dialect, _noindex(dialect, s.c.started_at), -_PERIOD_MAX["day"]),
        ))
        where: list[Any] = [s.c.ended_at.is_not(None), _noindex(dialect, s.c.member_id).is_not(None)]
        if site_id is not None:
            where.append(m.c.site_id == site_id)
        keys: list[Any] = []
        for d in dims:
            if d == "day":
                keys.append(p.c.pkey.label("day"))
            elif d == "month":
                keys.append(sa.func.substr(p.c.pkey, 1, 7).label("month"))
            elif d == "week":
                keys.append(p.c.week.label("week"))
            else:
                frm, key = _dimension(dialect, d, frm, s, m)
                keys.append(key)
        inner = (sa.select(*keys, _noindex(dialect, s.c.member_id).label("member_id"),
                           p.c.pid.label("vday"))
                 .select_from(frm).where(*where).distinct().subquery("v"))
        outer_keys = [inner.c[d] for d in dims]
        q = (sa.select(*outer_keys, sa.func.count().label("visits")).select_from(inner)
             .group_by(*outer_keys).order_by(*outer_keys))
        return [dict(r) for r in db.execute(q).mappings()]


def _dimension(dialect: str, d: str, frm: Any, s: Any, m: Any) -> tuple[Any, Any]:
    """Join what a non-time dimension needs; returns (from clause, labelled key)."""
    if d == "machine":
        return frm, m.c.slug.label("machine")
    if d == "kind":
        return frm, m.c.kind.label("kind")
    if d == "member":
        return frm, s.c.member_id.label("member")
    if d == "site":
        st = Site.__table__.alias("st")
        return frm.join(st, st.c.id == m.c.site_id), st.c.slug.label("site")
    if d == "machine_group":
        mg = machine_group_members.alias("mg")
        g = MachineGroup.__table__.alias("g")
        frm = frm.join(mg, mg.c.machine_id == m.c.id).join(g, g.c.id == mg.c.group_id)
        return frm, g.c.slug.label("machine_group")
    if d == "member_tag":
        mem = Member.__table__.alias("mem")
        tags = _json_elements(dialect, mem.c.tags)
        frm = frm.join(mem, mem.c.id == _noindex(dialect, s.c.member_id)).join(tags, sa.true())
        return frm, tags.c.value.label("member_tag")
    raise ReportError(f"group_by: {d!r} is not available here")


DENIED_DIMENSIONS = ("reason", "machine", "site", *TIME_DIMENSIONS)


def _denied_minute(dialect: str, ts: Any) -> Any:
    """The UTC minute of an event timestamp (naive UTC in the database), as a datetime."""
    if dialect == "sqlite":
        return sa.func.strftime("%Y-%m-%d %H:%M:00", ts, type_=UTCDateTime())
    return sa.func.date_trunc("minute", ts, type_=UTCDateTime())


def _denied_label(minute: datetime, zone: ZoneInfo, kind: str) -> str:
    """The day / ISO week / month label of a UTC minute in a zone (`period_key`'s labels)."""
    try:
        local = minute.astimezone(zone)
    except (OverflowError, ValueError):  # a node clock far off, near year 1 or 9999
        local = minute
    return period_key(local.date(), kind)


def denied_report(db: Session, group_by: str | Sequence[str] = "reason",
                  since: datetime | None = None, until: datetime | None = None,
                  site: str | int | None = None) -> list[dict[str, Any]]:
    """Denied badge attempts (`badge.denied` events, at the node's timestamp) counted by
    ``reason``, ``machine`` (slug), ``site`` (slug) and ``day`` / ``week`` / ``month``.

    Days, ISO weeks and months are those of the **machine's site** (`Site.timezone`), with the
    same labels as `usage_report` (``2026-11-22``, ``2026-W47``, ``2026-11``); attempts on a
    node without a machine (or of a node unknown to the server), and sites whose zone this
    system does not know, are labelled in UTC. Rows are sorted by their keys, empty keys last.

    How: the database groups the attempts by the other keys, the site's zone and the UTC
    *minute* of the timestamp (at most one row per minute with an attempt, never more rows than
    attempts); Python then gives each minute its local label with zoneinfo and adds the counts
    up. This is exact, DST included: since 1972 every UTC offset and every DST change in the tz
    database falls on a whole minute (Chatham's +12:45, Nepal's +5:45 and changes at 00:01
    included), so a local day, week or month never begins inside a UTC minute. (Before 1972,
    Africa/Monrovia's −0:44:30 could put up to 30 seconds of attempts in the neighbouring day.)
    """
    dims = [d.strip() for d in group_by.split(",")] if isinstance(group_by, str) else list(group_by)
    dims = [d for d in dims if d]
    for d in dims:
        if d not in DENIED_DIMENSIONS:
            raise ReportError(f"group_by: unknown dimension {d!r} (one of {', '.join(DENIED_DIMENSIONS)})")
    if len(set(dims)) != len(dims):
        raise ReportError("group_by: a dimension is repeated")
    since, until = _aware(since), _aware(until)
    site_id = _site_id(db, site)
    dialect = db.get_bind().dialect.name
    e = Event.__table__.alias("e")
    m = Machine.__table__.alias("m")
    st = Site.__table__.alias("st")
    frm: Any = e.outerjoin(m, m.c.node_id == e.c.node_id).outerjoin(st, st.c.id == m.c.site_id)
    where: list[Any] = [e.c.type == "badge.denied"]
    if since is not None:
        where.append(e.c.ts >= since)
    if until is not None:
        where.append(e.c.ts < until)
    if site_id is not None:
        where.append(m.c.site_id == site_id)
    plain = [d for d in dims if d not in TIME_DIMENSIONS]
    times = [d for d in dims if d in TIME_DIMENSIONS]
    cols = {"reason": e.c.data["reason"].as_string(), "machine": m.c.slug, "site": st.c.slug}
    keys: list[Any] = [cols[d].label(d) for d in plain]
    if times:
        keys += [st.c.timezone.label("_tz"), _denied_minute(dialect, e.c.ts).label("_minute")]
    q = (sa.select(*keys, sa.func.count().label("denied")).select_from(frm).where(*where)
         .group_by(*keys))
    zones: dict[str | None, ZoneInfo] = {}
    labels: dict[tuple[str | None, datetime, str], str] = {}
    counts: dict[tuple[Any, ...], int] = {}
    for r in db.execute(q).mappings():
        row = {d: r[d] for d in plain}
        if times:
            tz, minute = r["_tz"], r["_minute"]
            if tz not in zones:
                zones[tz] = ZoneInfo(_zone_name(tz))
            for d in times:
                if (tz, minute, d) not in labels:
                    labels[(tz, minute, d)] = _denied_label(minute, zones[tz], d)
                row[d] = labels[(tz, minute, d)]
        key = tuple(row[d] for d in dims)
        counts[key] = counts.get(key, 0) + int(r["denied"])
    out = [{**dict(zip(dims, key, strict=True)), "denied": n} for key, n in counts.items()]
    sort_rows(out, dims)
    return out


# ---------------------------------------------------------------- member statement


def member_statement(db: Session, member_id: int, since: datetime | None = None,
                     until: datetime | None = None, basis: str = "hours") -> dict[str, Any]:
    """Hours per machine × the machine's hourly rate, for billing or credits.

    `basis` is ``hours`` (session time, what the member held the machine) or ``active_hours``.
    Machines without a rate are listed with no amount."""
    if basis not in ("hours", "active_hours"):
        raise ReportError("basis: hours or active_hours")
    rows = usage_report(db, "machine", since, until, member_id=member_id)
    rates = dict(db.execute(sa.select(Machine.slug, Machine.hourly_rate)).all())
    names = dict(db.execute(sa.select(Machine.slug, Machine.name)).all())
    total = 0.0
    for r in rows:
        rate = rates.get(r["machine"])
        r["name"] = names.get(r["machine"])
        r["rate"] = rate
        r["amount"] = None if rate is None else round(r[basis] * rate, 2)
        total += r["amount"] or 0.0
    return {"member": member_id, "since": since, "until": until, "basis": basis,
            "rows": rows, "total": round(total, 2)}


# ---------------------------------------------------------------- funder report

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
    since_a, until_a = _aware(since), _aware(until)
    assert since_a is not None and until_a is not None
    if until_a <= since_a:
        raise ReportError("until must be after since")
    site_id = _site_id(db, site)
    # one pass over the cells by machine family; the totals are their sums and union
    kinds = rollups.usage_rows(db, ("kind",), since_a, until_a, site_id, with_member_sets=True)
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
    site_slug = None
    if site_id is not None:
        site_slug = db.scalar(sa.select(Site.slug).where(Site.id == site_id))
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
    return {"since": since_a, "until": until_a, "site": site_slug, "summary": summary,
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
    "DIMENSIONS", "FUNDER_COLUMNS", "METRICS", "ReportError", "denied_report", "funder_report",
    "mask", "member_statement", "visits_report", "TIME_DIMENSIONS", "calendar", "period_key",
    "rows_to_csv", "usage_report",
]
