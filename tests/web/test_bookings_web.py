"""The booking pages in French: book a slot on the week view, see a refusal in French, and
read the machine's secret iCal feed with the icalendar library."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar


def _tomorrow() -> str:
    return (datetime.now(ZoneInfo("Europe/Paris")) + timedelta(days=1)).date().isoformat()


def test_book_in_french_conflict_in_french_and_ical(app: Any, actions: Any, seed: Any) -> None:
    actions.post("/lang", {"lang": "fr"}, page="/login")
    actions.login("manager@example.org")
    page = f"/bookings?machine={seed.laser}"
    html = actions.client.get(page).get_data(as_text=True)
    assert "Réserver un créneau" in html and '<html lang="fr">' in html
    day = _tomorrow()
    form = {"machine_id": seed.laser, "member_id": seed.alice, "day": day, "start": "14:00",
            "end": "16:00"}
    r = actions.post("/bookings", form, page=page)
    assert r.status_code == 302
    html = actions.client.get(f"{page}&week={day}").get_data(as_text=True)
    assert "Réservé." in html and "14:00–16:00" in html and "Alice Martin" in html
    r = actions.post("/bookings", {**form, "member_id": seed.tom, "start": "15:00",
                                   "end": "17:00"}, page=page)
    html = actions.client.get(r.headers["Location"]).get_data(as_text=True)
    assert "chevauche une autre réservation" in html  # the conflict, in French
    r = actions.post("/bookings", {**form, "start": "17:00", "end": "16:00"}, page=page)
    html = actions.client.get(r.headers["Location"]).get_data(as_text=True)
    assert "la fin doit être après le début" in html

    feed = re.search(r'<code id="feed">http://[^/]+(/bookings/ical/[^<]+)</code>', html)
    assert feed, html
    anon = app.test_client()  # a calendar app: no login
    r = anon.get(feed.group(1))
    assert r.status_code == 200 and r.mimetype == "text/calendar"
    cal = icalendar.Calendar.from_ical(r.data)
    events = [c for c in cal.walk("VEVENT")]
    assert len(events) == 1
    start = events[0].decoded("dtstart")
    assert start.astimezone(ZoneInfo("Europe/Paris")).strftime("%Y-%m-%d %H:%M") == f"{day} 14:00"
    assert events[0].decoded("dtend") - start == timedelta(hours=2)
    assert "Alice M." in str(events[0]["summary"])  # a shared calendar: initial only
    assert anon.get(feed.group(1).replace(".ics", "0.ics")).status_code == 404  # wrong token


def test_booking_pages_need_a_login(client: Any) -> None:
    r = client.get("/bookings")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert datetime.now(UTC)  # keep the import used


def test_member_calendar(app: Any, actions: Any, seed: Any) -> None:
    """A member's feed lists their bookings on every machine, with their full name."""
    from server import services
    from server.services import bookings

    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    with app.app_context():
        db = app.extensions["fabpass.sessionmaker"]()
        bookings.create_booking(db, machine_id=seed.laser, member_id=seed.alice, start=start,
                                end=start + timedelta(hours=1), actor="test")
        services.grant(db, seed.alice, machine_id=seed.printer, actor="test")
        bookings.create_booking(db, machine_id=seed.printer, member_id=seed.alice,
                                start=start, end=start + timedelta(hours=3), actor="test")
        db.commit()
        db.close()
    actions.login("admin@example.org")
    html = actions.client.get(f"/bookings?member={seed.alice}&week={start.date()}").get_data(
        as_text=True)
    feed = re.search(r'<code id="feed">http://[^/]+(/bookings/ical/[^<]+)</code>', html)
    assert feed, html
    cal = icalendar.Calendar.from_ical(app.test_client().get(feed.group(1)).data)
    events = sorted(cal.walk("VEVENT"), key=lambda e: str(e["summary"]))
    assert [str(e["summary"]) for e in events] == ["3D printer — Alice Martin",
                                                   "Laser cutter — Alice Martin"]
    assert events[0].decoded("dtend") - events[0].decoded("dtstart") == timedelta(hours=3)
