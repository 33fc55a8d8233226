"""What the SQL reports share: dimensions, metrics, the error, dialect helpers and the calendar join.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.errors import N_
from server.models import (
    Machine,
    MachineGroup,
    Member,
    Site,
    UsageSession,
    UTCDateTime,
    machine_group_members,
)
from server.reports.periods import (
    MAX_PERIODS,
    TIME_DIMENSIONS,
    TOO_MANY_FIELDS,
    ReportError,
    calendar,
    week_of,
    zone_name,
)

log = logging.getLogger(__name__)


DIMENSIONS = ("machine", "machine_group", "member", "member_tag", "site", "kind", *TIME_DIMENSIONS)


METRICS = ("sessions", "hours", "active_hours", "members")


# Longest period of each kind plus a DST hour: bounds the calendar join so it uses the index.
PERIOD_MAX = {"day": timedelta(hours=26), "week": timedelta(days=7, hours=2),
               "month": timedelta(days=31, hours=2)}


EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)


LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def epoch(dialect: str, col: Any) -> Any:
    """Seconds since 1970 of a naive-UTC datetime column, portably."""
    if dialect == "sqlite":
        return (sa.func.julianday(col) - 2440587.5) * 86400.0
    return sa.func.date_part("epoch", col, type_=sa.Float)  # double precision, not numeric


def shift(dialect: str, col: Any, delta: timedelta) -> Any:
    """`col + delta` for a datetime column, portably (SQLite keeps its text format)."""
    secs = int(delta.total_seconds())
    if dialect == "sqlite":
        return sa.func.strftime("%Y-%m-%d %H:%M:%f", col, f"{secs:+d} seconds")
    return col + sa.literal_column(f"interval '{secs} seconds'")


def noindex(dialect: str, col: Any) -> Any:
    """Keeps SQLite from driving the join by a sessions index (one scan of sessions, probing the
    small calendar by index, is the fast order)."""
    if dialect == "sqlite":
        return sa.func.coalesce(col, col, type_=col.type)
    if isinstance(col.type, sa.Integer):
        return col + 0
    return col


def least(a: Any, b: Any) -> Any:
    return sa.case((a < b, a), else_=b)


def greatest(a: Any, b: Any) -> Any:
    return sa.case((a > b, a), else_=b)


def aware(value: datetime | None) -> datetime | None:
    """UTC-aware, within 1970-2200 (a wider range cannot be in the data and would overflow
    time zone arithmetic)."""
    if value is None:
        return None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    if not EARLIEST <= value <= LATEST:
        raise ReportError(N_("since/until: between 1900 and 2200"))
    return value


def dims_of(group_by: str | Sequence[str]) -> list[str]:
    dims = [d.strip() for d in group_by.split(",")] if isinstance(group_by, str) else list(group_by)
    dims = [d for d in dims if d]
    if not dims:
        raise ReportError(N_("group_by: at least one dimension is needed"))
    for d in dims:
        if d not in DIMENSIONS:
            raise ReportError(N_("group_by: unknown dimension %(d)r (one of %(choices)s)"),
                              {"d": d, "choices": ", ".join(DIMENSIONS)})
    if len([d for d in dims if d in TIME_DIMENSIONS]) > 1:
        raise ReportError(N_("group_by: at most one of day, week, month"))
    if len(set(dims)) != len(dims):
        raise ReportError(N_("group_by: a dimension is repeated"))
    return dims


def site_id_of(db: Session, site: str | int | None) -> int | None:
    if site is None or site == "":
        return None
    if isinstance(site, int):
        return site
    sid = db.scalar(sa.select(Site.id).where(Site.slug == site))
    if sid is None:
        raise ReportError(N_("site: no site %(site)r"), {"site": site})
    return int(sid)


def data_range(db: Session, site_id: int | None) -> tuple[datetime, datetime] | None:
    s = UsageSession.__table__
    q = sa.select(sa.func.min(s.c.started_at), sa.func.max(s.c.ended_at)).where(
        s.c.ended_at.is_not(None))
    if site_id is not None:
        m = Machine.__table__
        q = q.select_from(s.join(m, m.c.id == s.c.machine_id)).where(m.c.site_id == site_id)
    lo, hi = db.execute(q).one()
    if lo is None or hi is None:
        return None
    lo, hi = aware(lo), aware(hi)
    assert lo is not None and hi is not None
    return lo, max(hi, lo) + timedelta(seconds=1)


def report_zone(tz: str | None) -> str:
    """A site's zone, or UTC if it is unknown to this system (logged: the report stays usable)."""
    name = zone_name(tz)
    if name != (tz or "UTC"):
        log.warning("unknown time zone %r: reporting that site in UTC", tz)
    return name


class CalendarTable:
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
             "week": week_of(key) if kind == "day" else key}
            for sid, tz in db.execute(q).all()
            for key, a, b in calendar(report_zone(tz), kind, since, until)
        ]
        if len(self.rows) > MAX_PERIODS:
            raise ReportError(N_("too many %(kind)ss in the range: narrow it or group by a longer "
                                 "period"), {"kind": kind}, fields=TOO_MANY_FIELDS)
        # the same period has the same number at every site (its label may start at different
        # instants): grouping by it merges sites, as grouping by the label would
        numbers = {k: i for i, k in enumerate(sorted({str(r["pkey"]) for r in self.rows}))}
        for row in self.rows:
            row["pid"] = numbers[str(row["pkey"])]
        self.labels = {i: k for k, i in numbers.items()}

    def __enter__(self) -> CalendarTable:
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


def _json_elements(dialect: str, col: Any) -> Any:
    """A table-valued function giving one row (`value`) per element of a JSON list."""
    if dialect == "sqlite":
        return sa.func.json_each(col).table_valued("value").alias("tag")
    return sa.func.json_array_elements_text(col).table_valued("value").alias("tag")


def dimension_column(dialect: str, d: str, frm: Any, s: Any, m: Any) -> tuple[Any, Any]:
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
        frm = frm.join(mem, mem.c.id == noindex(dialect, s.c.member_id)).join(tags, sa.true())
        return frm, tags.c.value.label("member_tag")
    raise ReportError(N_("group_by: %(d)r is not available here"), {"d": d})
