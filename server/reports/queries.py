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

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.errors import N_
from server.models import (
    Event,
    Machine,
    Refusal,
    Site,
    UsageSession,
    UTCDateTime,
)
from server.reports.periods import (
    DURATION_CAP_S,
    MAX_CELLS,
    TIME_DIMENSIONS,
    TOO_MANY_FIELDS,
    ReportError,
    period_key,
    sort_rows,
)
from server.reports.rollups import ROLLUP_DIMENSIONS
from server.reports.rollups_read import usage_rows, visits_rows
from server.reports.sql import (
    PERIOD_MAX,
    CalendarTable,
    aware,
    data_range,
    dimension_column,
    dims_of,
    epoch,
    greatest,
    least,
    noindex,
    report_zone,
    shift,
    site_id_of,
)


def bounded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows`, unless there are more than `MAX_CELLS` of them: a report that large is refused
    (400 on the API, a message on the page) rather than rendered and sent."""
    if len(rows) > MAX_CELLS:
        raise ReportError(N_("the report would have more than %(max)d rows: narrow the range, "
                             "filter or group by fewer dimensions"), {"max": MAX_CELLS},
                          fields=TOO_MANY_FIELDS)
    return rows


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

    Reports without a member dimension or filter read the roll-up cells (`server.reports.rollups`);
    ``use_rollups=False`` computes everything from the sessions in SQL (the reference the
    roll-ups are tested against, and the path for member dimensions).
    """
    dims = dims_of(group_by) if group_by != () else []
    since, until = aware(since), aware(until)
    filters = {"member_id": member_id, "machine_id": machine_id}
    if since is not None and until is not None and until <= since:
        raise ReportError(N_("until must be after since"))
    site_id = site_id_of(db, site)
    if use_rollups and member_id is None and all(d in ROLLUP_DIMENSIONS for d in dims):
        return bounded(usage_rows(db, dims, since, until, site_id, machine_id))
    time_dim = next((d for d in dims if d in TIME_DIMENSIONS), None)
    if time_dim is None:
        return bounded(_run(db, dims, since, until, site_id, None, filters))
    if since is None or until is None:
        rng = data_range(db, site_id)
        if rng is None:
            return []
        since = since or rng[0]
        until = until or rng[1]
        if until <= since:
            return []
    with CalendarTable(db, time_dim, since, until, site_id) as cal:
        return bounded(_run(db, dims, since, until, site_id, cal, filters))


def _run(db: Session, dims: list[str], since: datetime | None, until: datetime | None,
         site_id: int | None, cal: CalendarTable | None,
         filters: dict[str, int | None] | None = None) -> list[dict[str, Any]]:
    dialect = db.get_bind().dialect.name
    s = UsageSession.__table__.alias("s")
    m = Machine.__table__.alias("m")
    frm: Any = s.join(m, m.c.id == noindex(dialect, s.c.machine_id))
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
            p.c.p_end > noindex(dialect, s.c.started_at),
            # a period touching a session starts at most one period length before it: this
            # bounds the probe of the calendar's (site_id, p_start) index to one or two rows
            p.c.p_start > shift(dialect, noindex(dialect, s.c.started_at), -PERIOD_MAX[kind]),
        ))
    else:
        lo = sa.literal(since, UTCDateTime()) if since is not None else None
        hi = sa.literal(until, UTCDateTime()) if until is not None else None
        # no index helps here (a session may start long before `since`): one sequential scan
        # beats walking most of the table through the started_at index
        if hi is not None:
            where.append(noindex(dialect, s.c.started_at) < hi)
    if lo is not None:
        # a session merely touching the period's start is out, a zero-length one starting there
        # in (and a skewed one, ending before it starts, counts where it starts)
        where.append(sa.or_(noindex(dialect, s.c.ended_at) > lo,
                            noindex(dialect, s.c.started_at) >= lo))

    start_e = epoch(dialect, s.c.started_at)
    end_e = epoch(dialect, s.c.ended_at)
    wall = end_e - start_e
    clip_start = start_e if lo is None else epoch(dialect, greatest(s.c.started_at, lo))
    clip_end = end_e if hi is None else epoch(dialect, least(s.c.ended_at, hi))
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
    duration = sa.case((sa.and_(s.c.duration_s >= 0, s.c.duration_s <= DURATION_CAP_S),
                        s.c.duration_s), (wall > 0, wall), else_=0.0)
    active = sa.case((sa.and_(s.c.active_s >= 0, s.c.active_s <= DURATION_CAP_S), s.c.active_s),
                     else_=0.0)
    energy = sa.case((sa.and_(s.c.energy_wh >= 0, s.c.energy_wh < 1e12), s.c.energy_wh),
                     else_=0.0)  # as rollups.session_energy

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
            keys.append(noindex(dialect, s.c.machine_id).label(d))
            labels[d] = dict(db.execute(sa.select(Machine.id, Machine.slug)).all())
        elif d == "member":
            keys.append(noindex(dialect, s.c.member_id).label(d))
        elif d == "site":
            keys.append(m.c.site_id.label(d))
            labels[d] = dict(db.execute(sa.select(Site.id, Site.slug)).all())
        else:
            frm, key = dimension_column(dialect, d, frm, s, m)
            keys.append(key)

    q = (
        sa.select(
            *keys,
            session_count.label("sessions"),
            (sa.func.sum(duration * frac) / 3600.0).label("hours"),
            (sa.func.sum(active * frac) / 3600.0).label("active_hours"),
            (sa.func.sum(energy * frac) / 1000.0).label("kwh"),
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
        row["kwh"] = round(float(row["kwh"] or 0.0), 4)
        row["members"] = int(row["members"] or 0)
        if "kind" in row and row["kind"] is not None:
            row["kind"] = str(getattr(row["kind"], "value", row["kind"]))
        rows.append(row)
    sort_rows(rows, dims)
    return rows


def visits_report(db: Session, group_by: str | Sequence[str] = (), since: datetime | None = None,
                  until: datetime | None = None, site: str | int | None = None,
                  *, use_rollups: bool = True) -> list[dict[str, Any]]:
    """Visits = distinct (member, day in the site's time zone) among closed sessions *starting*
    in [since, until). Groups: any non-time dimension, plus ``day``, ``week`` or ``month``."""
    dims = dims_of(group_by) if group_by not in ((), "", None) else []
    since, until = aware(since), aware(until)
    if since is not None and until is not None and until <= since:
        raise ReportError(N_("until must be after since"))
    site_id = site_id_of(db, site)
    if use_rollups and all(d in ROLLUP_DIMENSIONS for d in dims):
        return bounded(visits_rows(db, dims, since, until, site_id))
    if since is None or until is None:
        rng = data_range(db, site_id)
        if rng is None:
            return []
        since, until = since or rng[0], until or rng[1]
    if until <= since:
        raise ReportError(N_("until must be after since"))
    dialect = db.get_bind().dialect.name
    with CalendarTable(db, "day", since, until, site_id) as cal:
        p = cal.table
        s = UsageSession.__table__.alias("s")
        m = Machine.__table__.alias("m")
        frm: Any = s.join(m, m.c.id == noindex(dialect, s.c.machine_id)).join(p, sa.and_(
            p.c.site_id == m.c.site_id,
            p.c.p_start <= noindex(dialect, s.c.started_at),
            p.c.p_end > noindex(dialect, s.c.started_at),
            p.c.p_start > shift(dialect, noindex(dialect, s.c.started_at), -PERIOD_MAX["day"]),
        ))
        where: list[Any] = [s.c.ended_at.is_not(None), noindex(dialect, s.c.member_id).is_not(None)]
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
                frm, key = dimension_column(dialect, d, frm, s, m)
                keys.append(key)
        inner = (sa.select(*keys, noindex(dialect, s.c.member_id).label("member_id"),
                           p.c.pid.label("vday"))
                 .select_from(frm).where(*where).distinct().subquery("v"))
        outer_keys = [inner.c[d] for d in dims]
        q = (sa.select(*outer_keys, sa.func.count().label("visits")).select_from(inner)
             .group_by(*outer_keys).order_by(*outer_keys))
        return bounded([dict(r) for r in db.execute(q).mappings()])


DENIED_DIMENSIONS = ("reason", "machine", "site", "member", *TIME_DIMENSIONS)


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
    ``reason``, ``machine`` (slug), ``site`` (slug), ``member`` (id, None for a badge nobody
    holds) and ``day`` / ``week`` / ``month``. ``reason`` is the server's explanation recorded
    at receive time (`server.services.refusals`: "expired" rather than the node's
    "unknown_badge"), or the node's reason for an event that has none.

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
            raise ReportError(N_("group_by: unknown dimension %(d)r (one of %(choices)s)"),
                              {"d": d, "choices": ", ".join(DENIED_DIMENSIONS)})
    if len(set(dims)) != len(dims):
        raise ReportError(N_("group_by: a dimension is repeated"))
    since, until = aware(since), aware(until)
    site_id = site_id_of(db, site)
    dialect = db.get_bind().dialect.name
    e = Event.__table__.alias("e")
    m = Machine.__table__.alias("m")
    st = Site.__table__.alias("st")
    rf = Refusal.__table__.alias("rf")
    frm: Any = (e.outerjoin(m, m.c.node_id == e.c.node_id).outerjoin(st, st.c.id == m.c.site_id)
                .outerjoin(rf, rf.c.event_uuid == e.c.event_id))
    where: list[Any] = [e.c.type == "badge.denied"]
    if since is not None:
        where.append(e.c.ts >= since)
    if until is not None:
        where.append(e.c.ts < until)
    if site_id is not None:
        where.append(m.c.site_id == site_id)
    plain = [d for d in dims if d not in TIME_DIMENSIONS]
    times = [d for d in dims if d in TIME_DIMENSIONS]
    cols = {"reason": sa.func.coalesce(rf.c.reason, e.c.data["reason"].as_string()),
            "machine": m.c.slug, "site": st.c.slug, "member": rf.c.member_id}
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
                zones[tz] = ZoneInfo(report_zone(tz))
            for d in times:
                if (tz, minute, d) not in labels:
                    labels[(tz, minute, d)] = _denied_label(minute, zones[tz], d)
                row[d] = labels[(tz, minute, d)]
        key = tuple(row[d] for d in dims)
        counts[key] = counts.get(key, 0) + int(r["denied"])
    out = [{**dict(zip(dims, key, strict=True)), "denied": n} for key, n in counts.items()]
    sort_rows(out, dims)
    return out


def member_statement(db: Session, member_id: int, since: datetime | None = None,
                     until: datetime | None = None, basis: str = "hours") -> dict[str, Any]:
    """Hours per machine × the machine's hourly rate, for billing or credits.

    `basis` is ``hours`` (session time, what the member held the machine) or ``active_hours``.
    Machines without a rate are listed with no amount."""
    if basis not in ("hours", "active_hours"):
        raise ReportError(N_("basis: hours or active_hours"))
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
