"""Usage roll-ups: per machine and site-local day and month aggregates behind the reports.

Why: a report over a million sessions spends most of its time counting distinct members
(``COUNT(DISTINCT member_id)`` cannot be summed across periods); on SQLite that alone is over a
second. The roll-up keeps, per (machine, local day) and (machine, local month), the session
count, seconds, active seconds and the *set* of members (and of members who started a session
there, for visits), so a report reads a few thousand cells and unions small sets instead.

How it stays exact:

- Triggers on ``sessions`` (``server.models.rollup_triggers``) append the machine and time span of
  every closed session written (insert, change, delete) to ``usage_rollup_dirty``. Every writer is
  covered: the ingest, the privacy jobs, imports, SQL typed by hand.
- `refresh` adds new sessions (marks "add") to their day and month cells, and rebuilds from
  ``sessions`` the local days of any other mark ("chg"), then their months from the day cells. It
  runs in the server's background thread every few seconds and at the start of every report, so
  a report never reads a stale cell.
- A report reads whole local months and days from cells and computes the partial days at the edges
  of its range (a range need not start at a site's midnight) from ``sessions``, looking back at
  most the longest session ever seen. Both use `split`, the same rules as the SQL reports in
  ``server.reports`` (which stay the reference, and the path for member dimensions).
"""

from __future__ import annotations

import logging
import sys
from array import array
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.models import (
    Machine,
    Site,
    UsageRollup,
    UsageRollupDirty,
    UsageRollupState,
    UsageSession,
)
from server.reports.periods import (
    DURATION_CAP_S,
    TIME_DIMENSIONS,
    LocalDays,
    month_of,
    next_month,
    split,
    zone_name,
)

log = logging.getLogger(__name__)


ROLLUP: sa.Table = UsageRollup.__table__  # type: ignore[assignment]


DIRTY: sa.Table = UsageRollupDirty.__table__  # type: ignore[assignment]


STATE: sa.Table = UsageRollupState.__table__  # type: ignore[assignment]


ROLLUP_DIMENSIONS = ("machine", "machine_group", "site", "kind", *TIME_DIMENSIONS)


if array("I").itemsize != 4:  # pragma: no cover - every platform we run on
    raise ImportError("usage roll-ups need a 4-byte array('I')")


def pack(ids: Iterable[int]) -> bytes:
    """A set of member ids as a sorted little-endian uint32 array."""
    a = array("I", sorted(ids))
    if sys.byteorder == "big":  # pragma: no cover
        a.byteswap()
    return a.tobytes()


def unpack(blob: bytes) -> array[int]:
    a = array("I")
    a.frombytes(blob)
    if sys.byteorder == "big":  # pragma: no cover
        a.byteswap()
    return a


def member_day(member: int, d: date) -> int:
    """A member-day of a month cell's visits: ``member << 5 | day of month - 1``."""
    return member << 5 | (d.day - 1)


@dataclass
class Cell:
    """Aggregates of one machine over one local day or month (or a part of a day)."""

    sessions: int = 0
    seconds: float = 0.0
    active_seconds: float = 0.0
    energy_wh: float = 0.0  # smart plugs' energy (issue 16), split like the active time
    members: set[int] = field(default_factory=set)
    starters: set[int] = field(default_factory=set)  # members, or member-days in a month cell

    def add(self, starts: bool, frac: float, duration: float, active: float,
            member: int | None, month_day: date | None = None, *, energy: float = 0.0) -> None:
        """Add a share of a session; `month_day`: this is a month cell, and the session starts on
        that local day (its visit is kept as a member-day)."""
        if starts:
            self.sessions += 1
            if member is not None:
                self.starters.add(member if month_day is None else member_day(member, month_day))
        self.seconds += duration * frac
        self.active_seconds += active * frac
        self.energy_wh += energy * frac
        if member is not None:
            self.members.add(member)


def session_amounts(s: datetime, e: datetime, duration_s: float | None,
                    active_s: float | None) -> tuple[float, float]:
    """What a session splits: the node's monotonic duration (else the wall clock) and active
    time, as `server.reports` does (a duration outside 0..DURATION_CAP_S is not believed)."""
    if duration_s is None or not 0 <= duration_s <= DURATION_CAP_S:  # NaN fails both tests
        wall = (e - s).total_seconds()
        duration_s = wall if wall > 0 else 0.0
    if active_s is None or not 0 <= active_s <= DURATION_CAP_S:
        active_s = 0.0
    return float(duration_s), float(active_s)


def session_energy(energy_wh: float | None) -> float:
    """A session's energy as the reports split it: none, negative or not finite counts 0."""
    return float(energy_wh) if energy_wh is not None and 0 <= energy_wh < 1e12 else 0.0


@dataclass
class RefreshResult:
    machines: int = 0
    day_cells: int = 0
    month_cells: int = 0
    dirty_rows: int = 0
    added_sessions: int = 0  # of which added to their cells without a rebuild
    more: bool = False  # a bounded refresh (`max_marks`) left machines' marks for the next one


def _machine_zones(db: Session) -> dict[int, str]:
    rows = db.execute(sa.select(Machine.id, Site.timezone).join(Site, Site.id == Machine.site_id))
    return {mid: zone_name(tz) for mid, tz in rows}


def _stale_zone_machines(db: Session, zones: dict[int, str]) -> set[int]:
    """Machines whose cells were built in another time zone (the machine moved to another site,
    or its site's zone was changed): rebuilt whole."""
    r = ROLLUP
    built = db.execute(sa.select(r.c.machine_id, r.c.tz).where(r.c.grain == "month").distinct())
    return {mid for mid, tz in built if zones.get(mid, tz) != tz}


def pending(db: Session) -> bool:
    """Whether a refresh has work to do (cheap: what every report checks first)."""
    d = DIRTY
    if db.scalar(sa.select(d.c.id).limit(1)) is not None:
        return True
    return bool(_stale_zone_machines(db, _machine_zones(db)))


ADD_MAX = 1000  # new sessions of one machine added one by one; more: its days are rebuilt


@dataclass
class _Marks:
    """The dirty marks of one machine."""

    n: int = 0
    changed: bool = False  # any "chg" mark: a counted version changed, its days are rebuilt
    lo: datetime | None = None
    hi: datetime | None = None
    adds: list[int] = field(default_factory=list)


def plan(db: Session, max_marks: int) -> list[list[int | None]]:
    """The machines with dirty marks, in parts of about `max_marks` marks (whole machines, at
    least one per part, marks without a machine first): what the background refresher does in
    one round, one transaction per part (`refresh(db, machines=part)`).

    Why a plan: a bounded `refresh` groups *every* mark by machine to choose its part, so a
    round of k parts grouped the whole table k times (under the ingest's load, 30-odd parts
    and the largest cost of the refresher thread). The plan groups once, read-only; each part
    then reads only its machines' marks. Marks added after the plan wait for the next round."""
    d = DIRTY
    counts = db.execute(sa.select(d.c.machine_id, sa.func.count()).group_by(d.c.machine_id)).all()
    parts: list[list[int | None]] = []
    taken = 0
    for mid, n in sorted(counts, key=lambda r: -1 if r[0] is None else r[0]):
        if not parts or (taken and taken + n > max_marks):
            parts.append([])
            taken = 0
        parts[-1].append(mid)
        taken += int(n)
    return parts


def refresh(db: Session, *, max_marks: int | None = None,
            machines: list[int | None] | None = None) -> RefreshResult:
    """Bring the cells up to date with ``sessions``, in the caller's transaction (the caller
    commits; a rollback leaves the dirty marks for the next refresh).

    `max_marks`: take the marks of whole machines only until about that many are claimed (at
    least one machine) and say in `RefreshResult.more` that others are left. The background
    refresher uses it so that each of its transactions holds the write lock briefly: a cell
    depends only on its own machine's sessions and marks, so refreshing some machines now and
    the others in the next transaction is as exact as doing all of them at once.

    `machines`: take only these machines' marks (a part of `plan`; `None` in the list: the
    marks without a machine). The zone check still covers every machine.

    New sessions (marks "add") are added to their cells; anything else rebuilds the local days it
    touched from the sessions. While it runs no session can be closed or changed (SQLite: the
    write lock; PostgreSQL: a lock on the marks table that the triggers need), so a session is
    never both added and counted by a rebuild."""
    result = RefreshResult()
    if machines is not None and not machines:
        return result
    if machines is None and not pending(db):
        return result
    dialect = db.get_bind().dialect.name
    if dialect == "postgresql":
        # conflicts with the triggers' inserts and with another refresh, not with readers
        db.execute(sa.text("LOCK TABLE usage_rollup_dirty IN SHARE ROW EXCLUSIVE MODE"))
    st = STATE
    # a write first: on SQLite this takes the write lock, so the marks read next are final
    db.execute(st.update().where(st.c.id == 1).values(refreshes=st.c.refreshes + 1))
    max_wall = float(db.scalar(sa.select(st.c.max_wall_s).where(st.c.id == 1)) or 0.0)
    zones = _machine_zones(db)
    ranges: dict[int, tuple[datetime, datetime] | None] = {}
    adds: dict[int, list[int]] = {}
    claimed, result.more = _claim_marks(db, max_marks, machines)
    for mid, marks in claimed.items():
        result.dirty_rows += marks.n
        if mid is None or mid not in zones:
            continue
        if marks.changed or marks.n > ADD_MAX:  # (then `adds` was not even read)
            assert marks.lo is not None and marks.hi is not None
            ranges[mid] = (marks.lo, marks.hi)
        else:
            adds[mid] = marks.adds
    for mid in _stale_zone_machines(db, zones):
        ranges[mid] = None
        adds.pop(mid, None)
    # machines with the same zone and the same dirty local days are rebuilt together: a
    # refresh after a day of traffic is a few batches, not a few queries per machine
    batches: dict[tuple[str, date | None, date | None], list[int]] = defaultdict(list)
    calendars = {tz: LocalDays(tz) for tz in {zones[mid] for mid in (*ranges, *adds)}}
    for mid, rng in sorted(ranges.items()):
        days = calendars[zones[mid]]
        if rng is None:
            batches[(days.name, None, None)].append(mid)
        else:
            batches[(days.name, days.day_of(rng[0]), days.day_of(rng[1]))].append(mid)
    new_wall = max_wall
    for (tz, d_lo, d_hi), mids in batches.items():
        n_days, n_months, wall = _rebuild(db, mids, calendars[tz], d_lo, d_hi, max_wall)
        result.machines += len(mids)
        result.day_cells += n_days
        result.month_cells += n_months
        new_wall = max(new_wall, wall)
    if adds:
        n_days, n_months, wall = _add(db, adds, {mid: calendars[zones[mid]] for mid in adds})
        result.added_sessions = sum(len(v) for v in adds.values())
        result.machines += len(adds)
        result.day_cells += n_days
        result.month_cells += n_months
        new_wall = max(new_wall, wall)
    if new_wall > max_wall:
        db.execute(st.update().where(st.c.id == 1).values(max_wall_s=new_wall))
    log.debug("roll-up refresh: %s", result)
    return result


def _claim_marks(db: Session, max_marks: int | None = None,
                 machines: list[int | None] | None = None
                 ) -> tuple[dict[int | None, _Marks], bool]:
    """Take the dirty marks (deleting them in this transaction), summed up per machine, and
    whether marks of other machines were left (`max_marks`, see `refresh`); with `machines`,
    only theirs. Called under the lock of `refresh`: no mark can be added until the
    transaction ends."""
    d = DIRTY
    top = db.scalar(sa.select(sa.func.max(d.c.id)))
    out: dict[int | None, _Marks] = {}
    if top is None:
        return out, False
    mine = d.c.id <= top
    if machines is not None:
        ids = [m for m in machines if m is not None]
        some = d.c.machine_id.in_(ids) if ids else sa.false()
        mine = sa.and_(mine, sa.or_(some, d.c.machine_id.is_(None)) if None in machines
                       else some)
    is_chg = sa.case((d.c.op == "add", 0), else_=1)
    q = (sa.select(d.c.machine_id, sa.func.count(), sa.func.sum(is_chg),
                   sa.func.min(d.c.t_from), sa.func.max(d.c.t_from), sa.func.min(d.c.t_to),
                   sa.func.max(d.c.t_to))
         .where(mine).group_by(d.c.machine_id))
    for mid, n, n_chg, a, b, c, e in db.execute(q):
        out[mid] = _Marks(int(n), bool(n_chg), min(a, c), max(b, e))
    left = False if machines is not None else _keep_first_machines(out, max_marks)
    few = [mid for mid, m in out.items() if not m.changed and m.n <= ADD_MAX and mid is not None]
    for i in range(0, len(few), 500):
        for mid, sid in db.execute(sa.select(d.c.machine_id, d.c.session_id).where(
                d.c.id <= top, d.c.op == "add", d.c.machine_id.in_(few[i:i + 500]))):
            out[mid].adds.append(sid)
    if machines is not None:
        db.execute(d.delete().where(mine))
        return out, False
    if not left:
        db.execute(d.delete().where(d.c.id <= top))
        return out, False
    taken = [mid for mid in out if mid is not None]
    if None in out:
        db.execute(d.delete().where(d.c.id <= top, d.c.machine_id.is_(None)))
    for i in range(0, len(taken), 500):
        db.execute(d.delete().where(d.c.id <= top, d.c.machine_id.in_(taken[i:i + 500])))
    return out, True


def _keep_first_machines(marks: dict[int | None, _Marks], max_marks: int | None) -> bool:
    """Keep in `marks` the machines (in id order, marks without a machine first) whose marks
    add up to about `max_marks` (at least one machine); returns whether any were dropped."""
    if max_marks is None or sum(m.n for m in marks.values()) <= max_marks:
        return False
    taken, dropped = 0, False
    for mid in sorted(marks, key=lambda m: -1 if m is None else m):
        if taken and taken + marks[mid].n > max_marks:
            del marks[mid]
            dropped = True
        else:
            taken += marks[mid].n
    return dropped


def _add(db: Session, adds: dict[int, list[int]], calendars: dict[int, LocalDays]
         ) -> tuple[int, int, float]:
    """Add new closed sessions (by id, per machine) to their day and month cells. Returns (day
    cells, month cells written, longest wall seen)."""
    r = ROLLUP
    s = UsageSession.__table__
    ids = sorted({sid for sids in adds.values() for sid in sids if sid is not None})
    day_add: dict[tuple[int, date], Cell] = defaultdict(Cell)
    month_add: dict[tuple[int, date], Cell] = defaultdict(Cell)
    wall_max = 0.0
    for i in range(0, len(ids), 500):
        q = sa.select(s.c.machine_id, s.c.started_at, s.c.ended_at, s.c.duration_s,
                      s.c.active_s, s.c.member_id, s.c.energy_wh).where(
            s.c.id.in_(ids[i:i + 500]), s.c.ended_at.is_not(None))
        for mid, st, en, dur, act, member, wh in db.execute(q):
            days = calendars.get(mid)
            if days is None:  # moved since its mark: that machine's "chg" marks rebuild it
                continue
            wall_max = max(wall_max, (en - st).total_seconds())
            duration, active = session_amounts(st, en, dur, act)
            energy = session_energy(wh)
            for d, starts, frac in split(days, st, en):
                day_add[(mid, d)].add(starts, frac, duration, active, member, energy=energy)
                month_add[(mid, month_of(d))].add(starts, frac, duration, active, member, d,
                                                  energy=energy)
    if not day_add:
        return 0, 0, wall_max
    for grain, cells in (("day", day_add), ("month", month_add)):
        mids = sorted({mid for mid, _ in cells})
        lo = min(p for _, p in cells)
        hi = max(p for _, p in cells)
        old = db.execute(sa.select(r.c.machine_id, r.c.period, r.c.sessions, r.c.seconds,
                                   r.c.active_seconds, r.c.member_ids, r.c.starter_ids,
                                   r.c.energy_wh).where(
            r.c.grain == grain, r.c.machine_id.in_(mids), r.c.period >= lo, r.c.period <= hi))
        stale: list[tuple[int, date]] = []  # stored cells now merged into `cells`
        for mid, period, n, secs, act, member_ids, starter_ids, wh in old:
            if (mid, period) not in cells:
                continue
            c = cells[(mid, period)]
            c.sessions += n
            c.seconds += secs
            c.active_seconds += act
            c.energy_wh += wh or 0.0
            c.members.update(unpack(member_ids))
            c.starters.update(unpack(starter_ids))
            stale.append((mid, period))
        for i in range(0, len(stale), 500):
            db.execute(r.delete().where(r.c.grain == grain, sa.tuple_(
                r.c.machine_id, r.c.period).in_(stale[i:i + 500])))
        db.execute(r.insert(), [_cell_row(grain, mid, calendars[mid].name, p, c)
                                for (mid, p), c in cells.items()])
    return len(day_add), len(month_add), wall_max


def _rebuild(db: Session, mids: list[int], days: LocalDays, d_lo: date | None,
             d_hi: date | None, max_wall: float) -> tuple[int, int, float]:
    """Rebuild the day cells of machines `mids` over local days [d_lo, d_hi] (all if None),
    then the month cells around them. Returns (day cells, month cells written, longest wall
    seen)."""
    r = ROLLUP
    s = UsageSession.__table__
    in_r = r.c.machine_id.in_(mids)
    q = sa.select(s.c.machine_id, s.c.started_at, s.c.ended_at, s.c.duration_s, s.c.active_s,
                  s.c.member_id, s.c.energy_wh).where(s.c.machine_id.in_(mids),
                                                      s.c.ended_at.is_not(None))
    one = timedelta(days=1)
    if d_lo is None or d_hi is None:
        db.execute(r.delete().where(in_r))
    else:
        db.execute(r.delete().where(r.c.grain == "day", in_r, r.c.period >= d_lo,
                                    r.c.period <= d_hi))
        # a session touching these days starts at most the longest session before the first
        q = q.where(s.c.started_at >= days.start(d_lo) - timedelta(seconds=max_wall + 1),
                    s.c.started_at < days.start(d_hi + one))
    cells: dict[tuple[int, date], Cell] = defaultdict(Cell)
    wall_max = 0.0
    for mid, st, en, dur, act, member, wh in db.execute(q):
        wall = (en - st).total_seconds()
        if wall > wall_max:
            wall_max = wall
        duration, active = session_amounts(st, en, dur, act)
        for d, starts, frac in split(days, st, en):
            if d_lo is not None and d_hi is not None and not d_lo <= d <= d_hi:
                continue  # a day outside the rebuilt range: its cell is not being replaced
            cells[(mid, d)].add(starts, frac, duration, active, member, energy=session_energy(wh))
    if cells:
        db.execute(r.insert(), [_cell_row("day", mid, days.name, d, c)
                                for (mid, d), c in cells.items()])
    # months: every month with a rebuilt day, from the day cells (sums add up, sets union)
    if d_lo is None or d_hi is None:
        months = sorted({month_of(d) for _, d in cells})
        m_lo, m_hi = (months[0], next_month(months[-1])) if months else (None, None)
    else:
        m_lo, m_hi = month_of(d_lo), next_month(month_of(d_hi))
        db.execute(r.delete().where(r.c.grain == "month", in_r, r.c.period >= m_lo,
                                    r.c.period < m_hi))
    if m_lo is None or m_hi is None:
        return len(cells), 0, wall_max
    month_cells: dict[tuple[int, date], Cell] = defaultdict(Cell)
    day_rows = db.execute(
        sa.select(r.c.machine_id, r.c.period, r.c.sessions, r.c.seconds, r.c.active_seconds,
                  r.c.member_ids, r.c.starter_ids, r.c.energy_wh)
        .where(r.c.grain == "day", in_r, r.c.period >= m_lo, r.c.period < m_hi))
    for mid, period, n, secs, act, ids, starters, wh in day_rows:
        c = month_cells[(mid, month_of(period))]
        c.sessions += n
        c.seconds += secs
        c.active_seconds += act
        c.energy_wh += wh or 0.0
        c.members.update(unpack(ids))
        c.starters.update(member_day(m, period) for m in unpack(starters))
    if month_cells:
        db.execute(r.insert(), [_cell_row("month", mid, days.name, m, c)
                                for (mid, m), c in month_cells.items()])
    return len(cells), len(month_cells), wall_max


def _cell_row(grain: str, mid: int, tz: str, period: date, c: Cell) -> dict[str, Any]:
    return {"grain": grain, "machine_id": mid, "period": period, "tz": tz,
            "sessions": c.sessions, "seconds": c.seconds, "active_seconds": c.active_seconds,
            "energy_wh": c.energy_wh, "members": len(c.members), "member_ids": pack(c.members),
            # visits are distinct member-days: a day keeps who started there, a month keeps
            # (member << 5 | day of month - 1) for each of its member-days
            "starter_ids": pack(c.starters)}


def rebuild_all(db: Session) -> RefreshResult:
    """Drop every cell and rebuild from ``sessions`` (`fabpass db rollups --rebuild`)."""
    db.execute(ROLLUP.delete())
    d = DIRTY
    db.execute(d.delete())
    s = UsageSession.__table__
    db.execute(d.insert().from_select(
        ["op", "machine_id", "t_from", "t_to"],
        sa.select(sa.literal("chg"), s.c.machine_id, sa.func.min(s.c.started_at),
                  sa.func.max(s.c.ended_at))
        .where(s.c.ended_at.is_not(None)).group_by(s.c.machine_id)))
    return refresh(db)
