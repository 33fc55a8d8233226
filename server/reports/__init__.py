"""Reports: periods in site time, roll-ups, the SQL report queries, the one CSV writer, charts.

- `periods`: local days, weeks and months, the calendar, how a session splits across periods;
- `rollups` (refresh) and `rollups_read`: per machine and local day/month cells kept honest by
  database triggers, read by the usage and visits reports;
- `sql` and `queries`: the usage, visits, denied-attempts and member-statement reports;
  `funder`: the consortium report with small counts masked;
- `csv`: `rows_to_csv`, the one writer every CSV export (web, API, CLI) goes through;
- `charts`: the SVG bar chart of the report pages (no JavaScript, no CDN).

Pages are in `server.web.reports`, commands in `server.cli.reports`.
"""

from __future__ import annotations

from server.reports.csv import (
    FRENCH,
    RAW,
    CsvFormat,
    rows_to_csv,
    safe_text,
)
from server.reports.funder import (
    FUNDER_COLUMNS,
    MASK_BELOW,
    MASKED,
    funder_report,
    mask,
)
from server.reports.periods import (
    MAX_PERIODS,
    TIME_DIMENSIONS,
    LocalDays,
    ReportError,
    calendar,
    month_of,
    next_month,
    period_key,
    sort_rows,
    split,
    week_of,
    zone_name,
)
from server.reports.queries import (
    DENIED_DIMENSIONS,
    denied_report,
    member_statement,
    usage_report,
    visits_report,
)
from server.reports.sql import (
    DIMENSIONS,
    EARLIEST,
    LATEST,
    METRICS,
)

__all__ = [
    "DENIED_DIMENSIONS",
    "DIMENSIONS",
    "EARLIEST",
    "FUNDER_COLUMNS",
    "LATEST",
    "LocalDays",
    "MASKED",
    "MASK_BELOW",
    "MAX_PERIODS",
    "METRICS",
    "ReportError",
    "TIME_DIMENSIONS",
    "calendar",
    "denied_report",
    "funder_report",
    "mask",
    "member_statement",
    "month_of",
    "next_month",
    "period_key",
    "rows_to_csv",
    "FRENCH",
    "RAW",
    "CsvFormat",
    "safe_text",
    "sort_rows",
    "split",
    "usage_report",
    "visits_report",
    "week_of",
    "zone_name",
]
