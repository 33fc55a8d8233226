"""The one CSV writer: every CSV the server produces (web, API, CLI) goes through `rows_to_csv`.

Two rules hold for every file, whatever its format (contract section 6, "CSV"):

- a text cell that a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`, a
  tab or a CR: OWASP's list) is prefixed with `'`, so names and tags typed by members (they come
  from self-service imports) are shown as text, never evaluated;
- numbers are written as numbers and never escaped, so a negative amount stays a number.

The format differs by reader: the API, the CLI and `raw=1` keep the machine-friendly `RAW`
(`,`, `.`, no BOM); web exports in a French UI use `FRENCH` (`;`, decimal comma and a UTF-8 BOM),
which is what French Excel and LibreOffice expect when a file is double-clicked.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from server.reports.sql import METRICS, dims_of

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class CsvFormat:
    """How a file is spelled for its reader: separator, decimal mark, byte-order mark."""

    delimiter: str = ","
    decimal: str = "."
    bom: bool = False


RAW = CsvFormat()
FRENCH = CsvFormat(delimiter=";", decimal=",", bom=True)


def safe_text(value: str) -> str:
    """The text as a spreadsheet must show it: a formula-looking start gets a leading `'`."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def cell(value: Any, fmt: CsvFormat = RAW) -> Any:
    """One cell: None is empty, numbers stay numbers (decimal mark of `fmt`), text is made safe."""
    if value is None:
        return ""
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float | Decimal):
        if not math.isfinite(value):
            return ""  # reports never emit a non-finite number (issue 13 item 6)
        return str(value).replace(".", fmt.decimal)
    return safe_text(str(value))


def rows_to_csv(rows: Iterable[dict[str, Any]], group_by: str | Sequence[str] | None = None,
                columns: Sequence[str] | None = None, *, fmt: CsvFormat = RAW,
                headers: Mapping[str, str] | None = None,
                footer: Sequence[Any] | None = None) -> str:
    """The same columns as the JSON rows: group keys first, then the metrics.

    `headers` maps a column key to the heading a person reads (the web's translated labels);
    keys without one keep the key. `footer` is one last row (a statement's total), written
    through the same cell rules.
    """
    rows = list(rows)
    if columns is None:
        dims = dims_of(group_by) if group_by else []
        extra = [k for r in rows[:1] for k in r if k not in dims and k not in METRICS]
        columns = [*dims, *METRICS, *extra]
    buf = io.StringIO()
    if fmt.bom:
        buf.write("\ufeff")
    w = csv.writer(buf, delimiter=fmt.delimiter, lineterminator="\r\n")
    w.writerow([safe_text(str((headers or {}).get(c, c))) for c in columns])
    for r in rows:
        w.writerow([cell(r.get(c), fmt) for c in columns])
    if footer is not None:
        w.writerow([cell(v, fmt) for v in footer])
    return buf.getvalue()
