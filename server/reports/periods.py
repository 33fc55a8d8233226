"""Periods in a site's time zone: local days, ISO weeks and months, how a session splits across them, and their keys.

Both the roll-ups and the SQL reports use these, so a session lands in the same period whichever
path computes a report.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from server.errors import N_, ServerError

TIME_DIMENSIONS = ("day", "week", "month")


def zone_name(tz: str | None) -> str:
    """A site's zone, or UTC if this system does not know it (the reports do the same)."""
    try:
        ZoneInfo(tz or "UTC")
    except (KeyError, ValueError):
        return "UTC"
    return tz or "UTC"


class LocalDays:
    """Local midnights of one time zone as UTC instants (cached: reports ask for the same days
    thousands of times)."""

    def __init__(self, tz: str) -> None:
        self.name = tz
        self.zone = ZoneInfo(tz)
        self._starts: dict[date, datetime] = {}

    def start(self, d: date) -> datetime:
        v = self._starts.get(d)
        if v is None:
            v = datetime(d.year, d.month, d.day, tzinfo=self.zone).astimezone(UTC)
            self._starts[d] = v
        return v

    def day_of(self, t: datetime) -> date:
        """The local day whose [start, next start) holds instant `t`."""
        d = t.astimezone(self.zone).date()
        while self.start(d) > t:  # a midnight that does not exist locally (DST at 00:00)
            d -= timedelta(days=1)
        while self.start(d + timedelta(days=1)) <= t:
            d += timedelta(days=1)
        return d


def split(days: LocalDays, s: datetime, e: datetime, lo: datetime | None = None,
          hi: datetime | None = None) -> Iterator[tuple[date, bool, float]]:
    """(local day, session starts in it, share of the session) for each local day that the closed
    session [s, e) touches within [lo, hi), by the rules of `server.reports`: a period P touches a
    session if ``s < P.end and (e > P.start or s >= P.start)``; the share is the wall-clock
    overlap over the wall-clock span, or all of it in the start period if that span is not
    positive (a skewed clock)."""
    wall = (e - s).total_seconds()
    t0 = s if lo is None or s >= lo else lo
    end_bound = e if hi is None or e < hi else hi
    d = days.day_of(t0)
    one = timedelta(days=1)
    for _ in range(100_000):  # 270 years of days: a bound, not a limit anyone meets
        ds, de = days.start(d), days.start(d + one)
        ps = ds if lo is None or ds >= lo else lo
        pe = de if hi is None or de <= hi else hi
        if ps < pe and s < pe and (e > ps or s >= ps):
            if wall > 0:
                frac = ((e if e < pe else pe) - (s if s > ps else ps)).total_seconds() / wall
            else:
                frac = 1.0
            yield d, ps <= s < pe, frac
        if de >= end_bound:
            return
        d += one


def month_of(d: date) -> date:
    return d.replace(day=1)


def next_month(d: date) -> date:
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


@functools.lru_cache(maxsize=65536)
def period_key(d: date, kind: str) -> str:
    """The label of the day, ISO week or month holding local date `d`: 2026-11-22, 2026-W47,
    2026-11 (cached: a report labels thousands of cells)."""
    if kind == "month":
        return f"{d.year:04d}-{d.month:02d}"
    if kind == "week":
        iso = d.isocalendar()
        return f"{iso.year:04d}-W{iso.week:02d}"
    return d.isoformat()


def sort_rows(rows: list[dict[str, Any]], dims: Sequence[str]) -> None:
    """Report rows in the order of their group keys, empty keys last (the same on SQLite and
    PostgreSQL, whatever order the database returned them in)."""
    rows.sort(key=lambda r: tuple((r[d] is None, r[d] if r[d] is not None else 0) for d in dims))


class ReportError(ServerError, ValueError):
    """A report was asked with a bad parameter (unknown dimension, site, inverted range), or
    one that would make the server build too much (too many periods or cells).

    `fields` names the request parameters at fault, so that the API's 400 names them: given,
    or read from the message's `name: ` (or `a/b: `) prefix; "until must be after since" is
    about `until`."""

    code = "invalid"  # the API answers 400

    def __init__(self, message: str, params: dict[str, object] | None = None, *,
                 fields: dict[str, str] | None = None) -> None:
        super().__init__(message, params, fields=fields)
        if not self.fields:
            head, sep, rest = self.message.partition(": ")
            if sep and re.fullmatch(r"[a-z_]+(/[a-z_]+)*", head):
                self.fields = {name: rest for name in head.split("/")}
            elif self.message.startswith("until must be after since"):
                self.fields = {"until": "must be after since"}


MAX_PERIODS = 50_000  # calendar rows per report: 20 years of days at 6 sites
MAX_CELLS = 100_000
"""Rows one report may answer (machines × days, members × months…): more is refused with a
400 naming `group_by`, rather than built and sent (issue 13)."""
TOO_MANY_FIELDS = {"group_by": "a longer period, or fewer dimensions",
                   "since": "a shorter range", "until": "a shorter range"}
DURATION_CAP_S = 366 * 86400.0
"""No stored duration counts beyond this (nor a negative or non-finite one): such a row predates
the ingest's plausibility bounds (issue 13); it counts its wall-clock span instead, so that no
report sums to Infinity. Applied the same way by the SQL reports and the roll-ups."""


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
            raise ReportError(N_("too many %(kind)ss in the range: narrow it or group by a longer "
                                 "period"), {"kind": kind}, fields=TOO_MANY_FIELDS)
        start = datetime(d.year, d.month, d.day, tzinfo=zone).astimezone(UTC)
        if start >= until:
            break
        nd = _next(d, kind)
        end = datetime(nd.year, nd.month, nd.day, tzinfo=zone).astimezone(UTC)
        out.append((period_key(d, kind), max(start, since), min(end, until)))
        d = nd
    return out


def week_of(day_key: str) -> str:
    return period_key(date.fromisoformat(day_key), "week")
