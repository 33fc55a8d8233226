"""The one CSV writer: every CSV the server produces (web, API, CLI) goes through `rows_to_csv`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from server.reports.sql import METRICS, dims_of


def rows_to_csv(rows: Iterable[dict[str, Any]], group_by: str | Sequence[str] | None = None,
                columns: Sequence[str] | None = None) -> str:
    """The same columns as the JSON rows: group keys first, then the metrics."""
    rows = list(rows)
    if columns is None:
        dims = dims_of(group_by) if group_by else []
        extra = [k for r in rows[:1] for k in r if k not in dims and k not in METRICS]
        columns = [*dims, *METRICS, *extra]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    return buf.getvalue()
