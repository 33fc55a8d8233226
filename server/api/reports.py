"""`/api/v1/reports/usage`.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from server.api import ApiError, bp
from server.api.support import no_nul, query_time, token_report_site, token_scope
from server.app import get_db


@bp.get("/reports/usage")
def usage_report() -> Any:
    try:
        from server import reports
    except ImportError:  # the reports part is optional at import time
        raise ApiError(501, "reports are not available") from None
    group_by = request.args.get("group_by") or ""
    fmt = (request.args.get("format") or "json").lower()
    if fmt not in ("json", "csv"):
        raise ApiError(400, "format must be json or csv", {"format": "json or csv"})
    no_nul(group_by, "group_by")
    since, until = query_time("since"), query_time("until")
    site = request.args.get("site") or None
    no_nul(site, "site")
    dims = [d.strip() for d in group_by.split(",") if d.strip()]
    if not dims or any(d not in reports.DIMENSIONS for d in dims):
        raise ApiError(400, "group_by must be machine, member, month or site",
                       {"group_by": ", ".join(reports.DIMENSIONS)})
    if since and until and (until - since).days > 366 * 50:
        raise ApiError(400, "the period is too long (50 years at most)", {"until": "too far"})
    report_site: str | int | None = site
    scope = token_scope()
    if scope is not None:
        report_site = token_report_site(site, scope)
    try:
        rows = reports.usage_report(get_db(), dims, since, until, site=report_site)
    except reports.ReportError as e:  # the fields at fault are named (issue 13)
        raise ApiError(400, str(e), e.fields or {"group_by": str(e)}) from None
    get_db().commit()  # keep the roll-up refresh the report did
    if fmt == "csv":
        return Response(reports.rows_to_csv(rows, dims), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=usage.csv"})
    return jsonify({"rows": rows})
