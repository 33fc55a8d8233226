"""`fabpass report …`: usage reports from the command line (same queries as the web and API)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import click


def _when(value: str | None, param: str) -> datetime | None:
    """RFC 3339 (`2026-11-01T00:00:00Z`) or a plain date (midnight UTC)."""
    if value is None or value == "":
        return None
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"not a date or RFC 3339 time: {value!r}", param_hint=param) from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _json_default(o: Any) -> Any:
    if isinstance(o, datetime):
        return o.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(o)


def _session() -> Any:
    from server.cli.support import database_session

    # commits: a report refreshes the roll-ups first, and that work is worth keeping
    return database_session(commit=True)


@click.group()
def report() -> None:
    """Usage reports."""


@report.command("usage")
@click.option("--group-by", "group_by", default="machine", show_default=True,
              help="machine, machine_group, member, member_tag, site, kind, day, week, month; "
                   "several separated by commas (e.g. month,machine)")
@click.option("--since", help="start (RFC 3339 or YYYY-MM-DD, UTC)")
@click.option("--until", help="end, exclusive (RFC 3339 or YYYY-MM-DD, UTC)")
@click.option("--site", help="only this site (slug)")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True)
def usage(group_by: str, since: str | None, until: str | None, site: str | None,
          fmt: str) -> None:
    """Sessions, hours, active hours and members per group, as CSV or JSON on stdout."""
    from server.reports import ReportError, rows_to_csv, usage_report

    with _session() as db:
        try:
            rows = usage_report(db, group_by, _when(since, "--since"), _when(until, "--until"),
                                site)
        except ReportError as exc:
            raise click.UsageError(str(exc)) from exc
    if fmt == "json":
        click.echo(json.dumps({"rows": rows}, default=_json_default))
    else:
        click.echo(rows_to_csv(rows, group_by), nl=False)


@report.command("funder")
@click.option("--since", required=True, help="start (RFC 3339 or YYYY-MM-DD, UTC)")
@click.option("--until", required=True, help="end, exclusive")
@click.option("--site", help="one site (slug); default: the whole consortium")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True)
def funder(since: str, until: str, site: str | None, fmt: str) -> None:
    """Aggregated activity for funders; counts under 5 are shown as "<5"."""
    from server.reports import FUNDER_COLUMNS, ReportError, funder_report, rows_to_csv

    start, end = _when(since, "--since"), _when(until, "--until")
    assert start is not None and end is not None
    with _session() as db:
        try:
            rep = funder_report(db, start, end, site)
        except ReportError as exc:
            raise click.UsageError(str(exc)) from exc
    if fmt == "json":
        click.echo(json.dumps(rep, default=_json_default))
    else:
        click.echo(rows_to_csv(rep["rows"], columns=FUNDER_COLUMNS), nl=False)
