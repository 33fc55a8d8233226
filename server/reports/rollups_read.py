"""Reading the roll-ups: whole months and days from cells, partial days at the edges from sessions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.models import (
    Machine,
    MachineGroup,
    Site,
    UsageRollupState,
    UsageSession,
    machine_group_members,
)
from server.reports.periods import (
    TIME_DIMENSIONS,
    LocalDays,
    month_of,
    next_month,
    period_key,
    sort_rows,
    split,
    zone_name,
)
from server.reports.rollups import (
    ROLLUP,
    Cell,
    member_day,
    refresh,
    session_amounts,
    session_energy,
    unpack,
)


@dataclass
class Part:
    """One contribution to a report group: a cell, or a partial day computed from sessions."""

    machine_id: int
    day: date  # the local day, or the first day of a month cell
    grain: str  # "day" | "month" | "slice"
    sessions: int
    seconds: float
    active_seconds: float
    members: int
    ids: Any = None  # member ids (set or array), loaded when a group needs a union
    starters: Any = None
    energy_wh: float = 0.0


@dataclass
class _MachineInfo:
    slug: str
    site_id: int
    site_slug: str
    kind: str
    groups: list[str]


@dataclass
class _Plan:
    """What of one site's range comes from month cells, day cells and sessions."""

    months: tuple[date | None, date | None] | None = None  # [lo, hi) of month starts
    day_ranges: list[tuple[date | None, date | None]] = field(default_factory=list)
    slices: list[tuple[datetime, datetime]] = field(default_factory=list)


def _plan(days: LocalDays, since: datetime | None, until: datetime | None,
          use_months: bool) -> _Plan:
    plan = _Plan()
    one = timedelta(days=1)
    fd = ud = None  # whole local days are [fd, ud)
    if since is not None:
        fd = days.day_of(since)
        if days.start(fd) < since:
            fd += one
    if until is not None:
        ud = days.day_of(until)
    if since is not None and until is not None:
        assert fd is not None and ud is not None
        if fd >= ud:
            plan.slices.append((since, until))
            return plan
    if since is not None and fd is not None and days.start(fd) > since:
        plan.slices.append((since, days.start(fd)))
    if until is not None and ud is not None and days.start(ud) < until:
        plan.slices.append((days.start(ud), until))
    if not use_months:
        plan.day_ranges.append((fd, ud))
        return plan
    m_lo = None if fd is None else (fd if fd.day == 1 else next_month(fd))
    m_hi = None if ud is None else month_of(ud)
    if m_lo is not None and m_hi is not None and m_lo >= m_hi:
        plan.day_ranges.append((fd, ud))
        return plan
    plan.months = (m_lo, m_hi)
    if fd is not None and m_lo is not None and fd < m_lo:
        plan.day_ranges.append((fd, m_lo))
    if ud is not None and m_hi is not None and m_hi < ud:
        plan.day_ranges.append((m_hi, ud))
    return plan


def _range_cond(col: Any, lo: date | None, hi: date | None) -> Any:
    conds = []
    if lo is not None:
        conds.append(col >= lo)
    if hi is not None:
        conds.append(col < hi)
    return sa.and_(sa.true(), *conds)


class _Reader:
    """Collects the parts of one report: cells by site plan, slices from sessions."""

    def __init__(self, db: Session, site_id: int | None, machine_id: int | None,
                 with_groups: bool) -> None:
        self.db = db
        m, st = Machine.__table__, Site.__table__
        q = sa.select(m.c.id, m.c.slug, m.c.site_id, st.c.slug, st.c.timezone, m.c.kind).join(
            st, st.c.id == m.c.site_id)
        if site_id is not None:
            q = q.where(m.c.site_id == site_id)
        if machine_id is not None:
            q = q.where(m.c.id == machine_id)
        groups: dict[int, list[str]] = defaultdict(list)
        if with_groups:
            mg, g = machine_group_members, MachineGroup.__table__
            for mid, slug in db.execute(sa.select(mg.c.machine_id, g.c.slug).join(
                    g, g.c.id == mg.c.group_id)):
                groups[mid].append(slug)
        self.machines: dict[int, _MachineInfo] = {}
        self.site_machines: dict[int, list[int]] = defaultdict(list)
        self.site_zone: dict[int, LocalDays] = {}
        for mid, slug, sid, sslug, tz, kind in db.execute(q):
            self.machines[mid] = _MachineInfo(slug, sid, sslug, str(getattr(kind, "value", kind)),
                                              groups.get(mid, []))
            self.site_machines[sid].append(mid)
            if sid not in self.site_zone:
                self.site_zone[sid] = LocalDays(zone_name(tz))
        self.max_wall = float(self.db.scalar(sa.select(UsageRollupState.max_wall_s).where(
            UsageRollupState.id == 1)) or 0.0)

    def _cell_query(self, cols: Sequence[Any], plan: _Plan, mids: list[int]) -> Any:
        r = ROLLUP
        alts = []
        if plan.months is not None:
            alts.append(sa.and_(r.c.grain == "month", _range_cond(r.c.period, *plan.months)))
        for lo, hi in plan.day_ranges:
            alts.append(sa.and_(r.c.grain == "day", _range_cond(r.c.period, lo, hi)))
        if not alts:
            return None
        mid_cond = r.c.machine_id == mids[0] if len(mids) == 1 else r.c.machine_id.in_(mids)
        return sa.select(*cols).where(mid_cond, sa.or_(*alts))

    def parts(self, since: datetime | None, until: datetime | None, use_months: bool,
              *, visits: bool = False) -> list[Part]:
        r = ROLLUP
        out: list[Part] = []
        for sid, mids in self.site_machines.items():
            days = self.site_zone[sid]
            plan = _plan(days, since, until, use_months)
            cols = [r.c.machine_id, r.c.period, r.c.grain, r.c.sessions, r.c.seconds,
                    r.c.active_seconds, r.c.members, r.c.energy_wh]
            if visits:
                cols.append(r.c.starter_ids)
            q = self._cell_query(cols, plan, mids)
            if q is not None:
                for row in self.db.execute(q):
                    p = Part(row[0], row[1], row[2], row[3], row[4], row[5], row[6],
                             energy_wh=row[7] or 0.0)
                    if visits:
                        p.starters = unpack(row[8])
                    out.append(p)
            for a, b in plan.slices:
                out += self._slice(days, mids, a, b)
        return out

    def _slice(self, days: LocalDays, mids: list[int], a: datetime, b: datetime) -> list[Part]:
        """Parts of [a, b) (less than a day) computed from the sessions themselves."""
        s = UsageSession.__table__
        q = sa.select(s.c.machine_id, s.c.started_at, s.c.ended_at, s.c.duration_s, s.c.active_s,
                      s.c.member_id, s.c.energy_wh).where(
            s.c.machine_id.in_(mids), s.c.ended_at.is_not(None),
            s.c.started_at >= a - timedelta(seconds=self.max_wall + 1), s.c.started_at < b)
        cells: dict[tuple[int, date], Cell] = defaultdict(Cell)
        for mid, st, en, dur, act, member, wh in self.db.execute(q):
            duration, active = session_amounts(st, en, dur, act)
            for d, starts, frac in split(days, st, en, a, b):
                cells[(mid, d)].add(starts, frac, duration, active, member,
                                    energy=session_energy(wh))
        return [Part(mid, d, "slice", c.sessions, c.seconds, c.active_seconds, len(c.members),
                     c.members, c.starters, energy_wh=c.energy_wh)
                for (mid, d), c in cells.items()]

    def load_ids(self, parts: list[Part]) -> None:
        """Fetch the member sets of the cell parts that lack them (one query per grain)."""
        r = ROLLUP
        want: dict[str, dict[tuple[int, date], Part]] = defaultdict(dict)
        for p in parts:
            if p.ids is None:
                want[p.grain][(p.machine_id, p.day)] = p
        for grain, by_key in want.items():
            mids = sorted({k[0] for k in by_key})
            lo = min(k[1] for k in by_key)
            hi = max(k[1] for k in by_key)
            q = sa.select(r.c.machine_id, r.c.period, r.c.member_ids).where(
                r.c.grain == grain, r.c.machine_id.in_(mids), r.c.period >= lo, r.c.period <= hi)
            for mid, period, blob in self.db.execute(q):
                part = by_key.get((mid, period))
                if part is not None:
                    part.ids = unpack(blob)


def _keys(info: _MachineInfo, part: Part, dims: Sequence[str]) -> list[tuple[Any, ...]]:
    """The report groups a part belongs to (several for a machine in several groups)."""
    keys: list[tuple[Any, ...]] = [()]
    for d in dims:
        if d == "machine":
            vals: list[Any] = [info.slug]
        elif d == "site":
            vals = [info.site_slug]
        elif d == "kind":
            vals = [info.kind]
        elif d == "machine_group":
            vals = info.groups
        else:
            vals = [period_key(part.day, d)]
        keys = [k + (v,) for k in keys for v in vals]
    return keys


def usage_rows(db: Session, dims: Sequence[str], since: datetime | None, until: datetime | None,
               site_id: int | None, machine_id: int | None = None,
               *, with_member_sets: bool = False) -> list[dict[str, Any]]:
    """`server.reports.usage_report` rows for dimensions in `ROLLUP_DIMENSIONS`.

    With `with_member_sets`, each row also carries ``_member_ids`` (a set) for callers that
    need who, not only how many (the funder report's members by tag)."""
    refresh(db)
    time_dim = next((d for d in dims if d in TIME_DIMENSIONS), None)
    reader = _Reader(db, site_id, machine_id, "machine_group" in dims)
    parts = reader.parts(since, until, use_months=time_dim in (None, "month"))
    groups: dict[tuple[Any, ...], list[Part]] = defaultdict(list)
    for p in parts:
        info = reader.machines.get(p.machine_id)
        if info is None:
            continue
        for key in _keys(info, p, dims):
            groups[key].append(p)
    if not dims and () not in groups:
        groups[()] = []
    need = [p for ps in groups.values() if len(ps) > 1 or with_member_sets for p in ps]
    if need:
        reader.load_ids(need)
    rows = []
    for key, ps in groups.items():
        row: dict[str, Any] = dict(zip(dims, key, strict=True))
        row["sessions"] = sum(p.sessions for p in ps)
        row["hours"] = round(sum(p.seconds for p in ps) / 3600.0, 4)
        row["active_hours"] = round(sum(p.active_seconds for p in ps) / 3600.0, 4)
        row["kwh"] = round(sum(p.energy_wh for p in ps) / 1000.0, 4)
        if len(ps) == 1 and not with_member_sets:
            row["members"] = ps[0].members
        else:
            ids: set[int] = set()
            for p in ps:
                ids.update(p.ids if p.ids is not None else ())
            row["members"] = len(ids)
            if with_member_sets:
                row["_member_ids"] = ids
        rows.append(row)
    sort_rows(rows, dims)
    return rows


def visits_rows(db: Session, dims: Sequence[str], since: datetime | None,
                until: datetime | None, site_id: int | None) -> list[dict[str, Any]]:
    """`server.reports.visits_report` rows (distinct member and local day among sessions
    starting in the range) for dimensions in `ROLLUP_DIMENSIONS`."""
    refresh(db)
    time_dim = next((d for d in dims if d in TIME_DIMENSIONS), None)
    use_months = time_dim in (None, "month")
    reader = _Reader(db, site_id, None, "machine_group" in dims)
    parts = reader.parts(since, until, use_months=use_months, visits=True)
    # per group, per local day (or per month, of member-day codes): who started a session
    by_group: dict[tuple[Any, ...], dict[date, set[int]]] = defaultdict(lambda: defaultdict(set))
    for p in parts:
        info = reader.machines.get(p.machine_id)
        if info is None or not p.starters:
            continue
        if not use_months or p.grain == "month":
            bucket, vals = p.day, p.starters
        else:  # a day's visits counted by month: as member-days, like the month cells
            bucket, vals = month_of(p.day), [member_day(m, p.day) for m in p.starters]
        for key in _keys(info, p, dims):
            by_group[key][bucket].update(vals)
    rows = [{**dict(zip(dims, key, strict=True)), "visits": sum(len(v) for v in per_day.values())}
            for key, per_day in by_group.items()]
    if not dims and not rows:
        rows = [{"visits": 0}]
    sort_rows(rows, dims)
    return rows
