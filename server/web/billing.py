"""Paid-use pages: a machine's tariff, a member's credit (top-ups, charges, waivers), statements
(a member's, and "my page"'s own), and a site's monthly accounting export.

Views parse the form, call `server.services.billing` or `server.reports.billing`, and render.
Scope is the one rule of the other pages: a machine's tariff and its charges belong to those who
manage the machine (`auth.can_manage_machine`), a member's credit and statement to those who
manage the member (`auth.can_manage_member`), a site's accounts to its managers
(`auth.can_manage_site`). Amounts are typed in euros (`12,50` or `12.50`) and kept in cents.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_currency, format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from server import auth, services
from server.app import get_db
from server.errors import Invalid, ServerError
from server.reports import billing as docs
from server.reports import rows_to_csv
from server.web.members import error_text

bp = Blueprint("billing", __name__)
MANAGERS = (auth.ADMIN, auth.MANAGER)
METHOD_LABELS = {"cash": _l("Cash"), "card": _l("Card"), "HelloAsso": _l("HelloAsso"),
                 "transfer": _l("Bank transfer")}
BASIS_LABELS = {"session": _l("Whole session"), "active": _l("Active time only")}

# the tariff's contract fields -> the form's inputs (amounts there are euros, not cents)
FORM_FIELDS = {"per_minute_cents": "per_minute", "session_cents": "session_fee",
               "minimum_cents": "minimum", "min_balance_cents": "min_balance",
               "per_kwh_cents": "per_kwh"}


class FormError(Exception):
    """A field the form could not read: (field, message)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def cents_from(raw: str | None, field: str, *, required: bool = False,
               negative: bool = False) -> int | None:
    """Euros as typed (`12,50`, `12.5`, `3`) to cents; more than two decimals is refused."""
    text = (raw or "").strip().replace("\u202f", "").replace(" ", "").replace(",", ".")
    text = text.removesuffix("€")
    if not text:
        if required:
            raise FormError(field, _("Enter an amount."))
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise FormError(field, _("Enter an amount in euros, e.g. 12,50.")) from None
    if not value.is_finite() or value != value.quantize(Decimal("0.01")):
        raise FormError(field, _("Enter an amount in euros, e.g. 12,50."))
    if value < 0 and not negative:
        raise FormError(field, _("The amount cannot be negative."))
    return int(value * 100)


def money(cents: int | None) -> str:
    if cents is None:
        return "—"
    return str(format_currency(Decimal(cents) / 100, current_app.config.get("CURRENCY", "EUR")))


def amount_input(cents: int | None) -> str:
    """Cents as a form shows them for editing: `0,50` in French, `0.50` in English."""
    if cents is None:
        return ""
    return str(format_decimal(Decimal(cents) / 100, format="0.00"))


def _csv(rows: list[dict[str, Any]], columns: list[str], name: str,
         footer: list[Any] | None = None) -> Any:
    """A web export through the one CSV writer (with the French spreadsheet format where the
    writer has it: `server.web.reports.web_csv`)."""
    from server.web import reports as web_reports

    web_csv = getattr(web_reports, "web_csv", None)
    if web_csv is not None:
        return web_csv(rows, name, columns=columns, footer=footer)
    last = [dict(zip(columns, footer, strict=False))] if footer else []
    return web_reports.csv_response(rows_to_csv([*rows, *last], columns=columns), name)


def _site_zone(site_id: int | None) -> str:
    if site_id is None:
        return str(current_app.config.get("TIMEZONE") or "UTC")
    return services.get_site(get_db(), site_id).timezone or "UTC"


def _period(tz: str) -> tuple[date, date, datetime, datetime]:
    """`from`/`to` (inclusive local dates) -> UTC range; the current month by default."""
    zone = ZoneInfo(tz)
    today = datetime.now(zone).date()

    def read(name: str, default: date) -> date:
        raw = request.args.get(name, "")
        try:
            return date.fromisoformat(raw) if raw else default
        except ValueError:
            flash(_("%(field)s: not a date (YYYY-MM-DD)", field=name), "error")
            return default

    first, last = read("from", today.replace(day=1)), read("to", today)
    if last < first:
        first, last = last, first
    since = datetime(first.year, first.month, first.day, tzinfo=zone).astimezone(UTC)
    nxt = date.fromordinal(last.toordinal() + 1)
    return first, last, since, datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).astimezone(UTC)


# ---------------------------------------------------------------- tariff


def _tariff_from_form(form: Any, tz: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"basis": form.get("basis") or "session"}
    for key, field in (("per_minute_cents", "per_minute"), ("session_cents", "session_fee"),
                       ("minimum_cents", "minimum"), ("min_balance_cents", "min_balance"),
                       ("per_kwh_cents", "per_kwh")):
        value = cents_from(form.get(field), field)
        if value is not None:
            spec[key] = value
    raw_round = (form.get("round_minutes") or "1").strip()
    if not raw_round.isdigit():
        raise FormError("round_minutes", _("A whole number of minutes, at least 1."))
    spec["round_minutes"] = int(raw_round)
    raw_from = (form.get("valid_from") or "").strip()
    if raw_from:
        try:
            day = date.fromisoformat(raw_from)
        except ValueError:
            raise FormError("valid_from", _("A date (YYYY-MM-DD).")) from None
        start = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz)).astimezone(UTC)
        if day != datetime.now(ZoneInfo(tz)).date():
            spec["valid_from"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    cats: dict[str, Any] = {}
    for n, line in enumerate((form.get("categories") or "").splitlines(), 1):
        if not line.strip():
            continue
        tag, sep, price = line.partition("=")
        if not sep or not tag.strip():
            raise FormError("categories", _("Line %(n)s: write tag = price per minute.", n=n))
        cats[tag.strip()] = {"per_minute_cents": cents_from(price, "categories", required=True)}
    if cats:
        spec["categories"] = cats
    return spec


@bp.route("/machines/<id:machine_id>/tariff", methods=["GET", "POST"])
@auth.roles_required(*MANAGERS)
def machine_tariff(machine_id: int) -> Any:
    db = get_db()
    m = services.get_machine(db, machine_id)
    if not auth.can_manage_machine(auth.me(), m):
        abort(403)
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        try:
            spec = None if request.form.get("free") else _tariff_from_form(
                request.form, m.site.timezone or "UTC")
            services.billing.set_tariff(db, m.id, spec, actor=auth.me().actor)
            db.commit()
            flash(_("The new tariff is saved."), "success")
            return redirect(url_for("billing.machine_tariff", machine_id=m.id))
        except FormError as e:
            errors[e.field] = str(e)
        except Invalid as e:
            db.rollback()
            for key in e.fields or {"tariff": ""}:
                name = key.removeprefix("tariff.").split(".")[0]
                errors[FORM_FIELDS.get(name, name)] = error_text(e)
        status = 400
        flash(_("The tariff was not saved: check the fields marked."), "error")
    versions = services.billing.tariff_versions(db, m.id)
    current = services.billing.current_tariff(db, m.id)
    return render_template("billing/tariff.html", m=m, versions=versions, current=current,
                           errors=errors, form=request.form, bases=BASIS_LABELS), status


# ---------------------------------------------------------------- a member's credit


def _managed_member(member_id: int) -> Any:
    m = services.get_member(get_db(), member_id)
    if not auth.can_manage_member(auth.me(), m):
        abort(403)
    return m


@bp.route("/members/<id:member_id>/credit", methods=["GET", "POST"])
@auth.roles_required(*MANAGERS)
def member_credit(member_id: int) -> Any:
    db = get_db()
    m = _managed_member(member_id)
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        try:
            amount = cents_from(request.form.get("amount"), "amount", required=True,
                                negative=True)
            services.billing.add_topup(db, m.id, amount, request.form.get("method"),
                                       request.form.get("reference") or None,
                                       actor=auth.me().actor)
            db.commit()
            flash(_("Top-up of %(amount)s recorded.", amount=money(amount)), "success")
            return redirect(url_for("billing.member_credit", member_id=m.id))
        except FormError as e:
            errors[e.field] = str(e)
        except Invalid as e:
            db.rollback()
            for key in e.fields:
                errors["amount" if key == "amount_cents" else key] = error_text(e)
        status = 400
    charges = services.billing.list_charges(db, member_id=m.id, per_page=50,
                                            site_ids=auth.managed_site_ids(auth.me()))
    from server.reports.billing import statement

    recent = statement(db, m.id, datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC))
    return render_template("billing/credit.html", m=m, bal=services.billing.balance(db, m.id),
                           charges=charges.items, topups=recent["topups"][-20:][::-1],
                           errors=errors, form=request.form, methods=METHOD_LABELS), status


@bp.post("/charges/<id:charge_id>/adjust")
@auth.roles_required(*MANAGERS)
def charge_adjust(charge_id: int) -> Any:
    db = get_db()
    charge = services.billing.get_charge(db, charge_id)
    if charge.machine is None or not auth.can_manage_machine(auth.me(), charge.machine):
        abort(403)
    back = url_for("billing.member_credit", member_id=charge.member_id) if charge.member_id \
        else url_for("web.dashboard")
    try:
        action = request.form.get("action")
        amount = cents_from(request.form.get("amount"), "amount", required=action == "adjust")
        services.billing.adjust_charge(db, charge.id, reason=request.form.get("reason"),
                                       waive=action == "waive",
                                       amount_cents=amount if action == "adjust" else None,
                                       actor=auth.me().actor)
        db.commit()
        flash(_("The charge is changed."), "success")
    except FormError as e:
        flash(str(e), "error")
    except ServerError as e:
        db.rollback()
        flash(_("Give a reason for the change.") if "reason" in getattr(e, "fields", {})
              else error_text(e), "error")
    return redirect(back)


# ---------------------------------------------------------------- statements


def _statement_page(member: Any, endpoint: str, **url_args: Any) -> Any:
    tz = _site_zone(member.site_id)
    first, last, since, until = _period(tz)
    st = docs.statement(get_db(), member.id, since, until, tz)
    if request.args.get("format") == "csv":  # signed: top-ups in, charges out
        rows: list[dict[str, Any]] = [{"date": first.isoformat(), "type": _("Opening balance"),
                                       "amount": docs.euros(st["opening_cents"])}]
        rows += [{"date": t["date"], "type": _("Top-up"), "reference": t["reference"],
                  "note": METHOD_LABELS.get(t["method"], t["method"]), "amount": t["amount"]}
                 for t in st["topups"]]
        rows += [{**c, "type": _("Charge"), "reference": c["session"], "amount": -c["amount"]}
                 for c in st["charges"]]
        rows[1:] = sorted(rows[1:], key=lambda r: str(r["date"]))
        return _csv(rows, docs.STATEMENT_COLUMNS, f"statement-{member.id}-{first}-{last}",
                    footer=[last.isoformat(), _("Closing balance"), None, None, None, None,
                            None, docs.euros(st["closing_cents"])])
    return render_template("billing/statement.html", member=member, st=st, first=first,
                           last=last, endpoint=endpoint, url_args=url_args,
                           methods=METHOD_LABELS)


@bp.get("/members/<id:member_id>/account")
@auth.roles_required(*MANAGERS)
def member_statement(member_id: int) -> Any:
    m = _managed_member(member_id)
    return _statement_page(m, "billing.member_statement", member_id=m.id)


@bp.get("/me/account")
@auth.roles_required()
def my_statement() -> Any:
    p = auth.me()
    if not p.member_id:
        abort(404)
    member = services.get_member(get_db(), p.member_id)
    return _statement_page(member, "billing.my_statement")


# ---------------------------------------------------------------- accounting


@bp.get("/reports/accounting")
@auth.roles_required(*MANAGERS)
def accounting() -> Any:
    db = get_db()
    me = auth.me()
    sites = [s for s in services.list_sites(db) if auth.can_manage_site(me, s.id)]
    if not sites:
        abort(403)
    slug = request.args.get("site") or sites[0].slug
    site = next((s for s in sites if s.slug == slug), None)
    if site is None:
        abort(403)
    zone = ZoneInfo(site.timezone or "UTC")
    month = request.args.get("month") or datetime.now(zone).strftime("%Y-%m")
    try:
        report = docs.accounting(db, site, month)
    except ValueError:
        flash(_("%(field)s: not a month (YYYY-MM)", field="month"), "error")
        month = datetime.now(zone).strftime("%Y-%m")
        report = docs.accounting(db, site, month)
    if request.args.get("format") == "csv":
        return _csv(report["rows"], docs.ACCOUNTING_COLUMNS, f"accounts-{site.slug}-{month}",
                    footer=[_("Total charges"), None, None, None, None, None, None, None, None,
                            docs.euros(report["charges_cents"])])
    labels = {"charge": _("Charge"), "topup": _("Top-up"), "balance": _("Balance")}
    return render_template("billing/accounting.html", report=report, site=site, sites=sites,
                           month=month, labels=labels, methods=METHOD_LABELS)


# ---------------------------------------------------------------- wiring


def fragment(kind: str, obj_id: int) -> Markup:
    """One line for the machine, member and "my page" templates: the tariff or credit, linked."""
    db = get_db()
    me = auth.me()
    if kind == "machine":
        m = services.get_machine(db, obj_id)
        if not auth.can_manage_machine(me, m):
            return Markup("")
        return Markup(render_template("billing/_machine.html", m=m,
                                      t=services.billing.current_tariff(db, m.id)))
    if kind == "member":
        member = services.get_member(db, obj_id)
        if not auth.can_manage_member(me, member) or me.role not in MANAGERS:
            return Markup("")
        return Markup(render_template("billing/_member.html", m=member,
                                      bal=services.billing.balance(db, member.id)))
    return Markup(render_template("billing/_me.html",
                                  bal=services.billing.balance(db, obj_id)))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.jinja_env.globals["billing_fragment"] = fragment
    app.jinja_env.filters["money"] = money
    app.jinja_env.filters["amount_input"] = amount_input
    app.config.setdefault("NAV_EXTRA", []).append(
        ("billing.accounting", _l("Accounts"), (auth.ADMIN, auth.MANAGER)))


__all__ = ["bp", "cents_from", "fragment", "init_app", "money"]
