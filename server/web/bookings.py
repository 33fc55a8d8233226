"""Booking pages: the week of a machine or of a site (phone-friendly: days stack on narrow
screens), a booking form, cancelling, and the secret iCal feeds (no login: the token is the
key). Rules are in `server.services.bookings`; who may book is `server.auth.can_book`."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _

from server import auth, services
from server.app import get_db
from server.errors import ServerError
from server.reports.bookings import booking_usage
from server.services import bookings, bookings_feeds
from server.web.blueprint import arg_id
from server.web.members import flash_error

if TYPE_CHECKING:
    from server.models import Machine, Member

bp = Blueprint("bookings", __name__)


def _week_start(raw: str | None, tz: ZoneInfo) -> date:
    try:
        day = date.fromisoformat(raw) if raw else datetime.now(tz).date()
    except ValueError:
        day = datetime.now(tz).date()
    return day - timedelta(days=day.weekday())


def _visible_machines(site_id: int | None) -> list[Machine]:
    scope = auth.managed_site_ids(auth.me()) if auth.me().is_manager else None
    return bookings.bookable_machines(get_db(), scope, site_id)


@bp.get("/bookings")
@auth.roles_required()
def week() -> Any:
    """`?machine=ID` or `?site=ID` (default: every visible machine), `?member=ID` (one
    member's bookings, with their calendar address), `?week=YYYY-MM-DD`."""
    db = get_db()
    machine_id, site_id = arg_id(request.args, "machine"), arg_id(request.args, "site")
    member_id = arg_id(request.args, "member")
    machines = _visible_machines(site_id)
    shown = [m for m in machines if machine_id is None or m.id == machine_id]
    if machine_id is not None and not shown:
        abort(404)
    site = services.get_site(db, site_id) if site_id else (shown[0].site if shown else None)
    tz = ZoneInfo(site.timezone if site else "UTC")
    monday = _week_start(request.args.get("week"), tz)
    today = datetime.now(tz).date()
    start = datetime.combine(monday, time(0), tzinfo=tz)
    end = start + timedelta(days=7)
    rows = bookings.list_bookings(db, machine_ids=[m.id for m in shown], member_id=member_id,
                                  since=start.astimezone(UTC), until=end.astimezone(UTC),
                                  per_page=500).items
    days = []
    for i in range(7):
        d0 = start + timedelta(days=i)
        d1 = d0 + timedelta(days=1)
        days.append({"date": d0.date(), "items": [
            {"b": b, "start": b.start.astimezone(tz), "end": b.end.astimezone(tz),
             "locked": bookings.hit_by_lock(b),
             "may_cancel": auth.can_book(db, auth.me(), b.machine, b.member_id, b.training)}
            for b in rows if b.start < d1 and b.end > d0]})
    feed_url = None
    feed = None
    if machine_id is not None and shown:
        feed = bookings_feeds.get_feed(db, machine_id=machine_id, actor=auth.me().actor)
    elif member_id is not None and _may_see_member_feed(services.get_member(db, member_id)):
        feed = bookings_feeds.get_feed(db, member_id=member_id, actor=auth.me().actor)
    if feed is not None:
        db.commit()
        feed_url = url_for("bookings.ical", feed_id=feed.id, _external=True,
                           token=bookings_feeds.feed_token(feed, _secret()))
    members = services.active_members(db)[:500]
    usage = booking_usage(db, since=start.astimezone(UTC), until=end.astimezone(UTC),
                          site_ids=auth.managed_site_ids(auth.me()))
    return render_template("bookings/week.html", days=days, machines=machines, shown=shown,
                           machine_id=machine_id, member_id=member_id, site=site,
                           monday=monday,
                           prev_week=monday - timedelta(days=7),
                           next_week=monday + timedelta(days=7), members=members,
                           feed_url=feed_url, usage=usage, tzname=str(tz), today=today,
                           default_day=today if monday <= today < monday + timedelta(days=7)
                           else monday)


def _may_see_member_feed(member: Member | None) -> bool:
    """A member's calendar covers every site: their own managers, or the member themself."""
    p = auth.me()
    return member is not None and (auth.can_manage_member(p, member) or p.member_id == member.id)


@bp.post("/bookings")
@auth.roles_required()
def create() -> Any:
    db = get_db()
    f = request.form
    machine_id, member_id = arg_id(f, "machine_id"), arg_id(f, "member_id")
    back = url_for("bookings.week", machine=machine_id, week=f.get("day") or None)
    if machine_id is None or member_id is None:
        flash(_("Choose a machine and a member."), "error")
        return redirect(back)
    try:
        machine = services.get_machine(db, machine_id)
        training = f.get("training") == "1"
        if not auth.can_book(db, auth.me(), machine, member_id, training):
            abort(403)
        tz = ZoneInfo(machine.site.timezone or "UTC")
        start, end = (_local(f.get("day"), f.get(k), tz, k) for k in ("start", "end"))
        bookings.create_booking(db, machine_id=machine_id, member_id=member_id, start=start,
                                end=end, training=training, actor=auth.me().actor)
        db.commit()
        flash(_("Booked."), "success")
    except ServerError as e:
        db.rollback()
        flash_error(e)
    return redirect(back)


def _local(day: str | None, hhmm: str | None, tz: ZoneInfo, field: str) -> Any:
    """A date and a time in the site's zone, as the service's RFC 3339 text (bad input is
    passed on as is so that the service names the field)."""
    try:
        d = date.fromisoformat(day or "")
        t = time.fromisoformat(hhmm or "")
    except ValueError:
        return f"{day} {hhmm}"
    return datetime.combine(d, t, tzinfo=tz)


@bp.post("/bookings/<int:booking_id>/cancel")
@auth.roles_required()
def cancel(booking_id: int) -> Any:
    db = get_db()
    b = bookings.get_booking(db, booking_id) if booking_id < 2**31 else None
    if b is None:
        abort(404)
    if not auth.can_book(db, auth.me(), b.machine, b.member_id, b.training):
        abort(403)
    bookings.cancel_booking(db, b.id, actor=auth.me().actor)
    db.commit()
    flash(_("Booking cancelled."), "success")
    return redirect(url_for("bookings.week", machine=b.machine_id))


@bp.get("/bookings/ical/<int:feed_id>/<token>.ics")
def ical(feed_id: int, token: str) -> Any:
    """No login: calendar apps cannot log in; the token in the address is the secret."""
    db = get_db()
    try:
        feed = bookings_feeds.feed_by_token(db, feed_id, token, _secret())
    except ServerError:
        abort(404)
    return Response(bookings_feeds.feed_calendar(db, feed), mimetype="text/calendar",
                    headers={"Cache-Control": "private, max-age=300"})


def _secret() -> str:
    key = current_app.secret_key or ""
    return key.decode() if isinstance(key, bytes) else str(key)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.config["NAV_EXTRA"] = [*app.config.get("NAV_EXTRA", []), ("bookings.week", "Bookings")]
