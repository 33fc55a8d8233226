"""What a page render asks the database (issue 21, "Pages"): the dashboard's first-run guide is
one statement at most and none once its answer is known done, the refusal card counts nothing,
the members page asks one statement for its rows and their total."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event


@contextmanager
def statements(app: Any) -> Iterator[list[str]]:
    """The SQL statements the app's engine runs inside the block."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engine = app.extensions["fabpass.engine"]
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def _exists(sql: list[str]) -> list[str]:
    return [s for s in sql if "EXISTS" in s.upper()]


def test_the_dashboard_asks_the_guide_once_and_counts_no_refusal(app: Any, actions: Any) -> None:
    actions.login("admin@example.org")
    first = actions.client.get("/")
    assert first.status_code == 200 and 'data-step="node"' in first.get_data(as_text=True)
    with statements(app) as sql:
        again = actions.client.get("/")
    assert again.status_code == 200 and 'data-step="node"' in again.get_data(as_text=True)
    # the four steps seen done a moment ago are not asked again; the node step is, alone
    assert len(_exists(sql)) == 1, sql
    assert not [s for s in sql if re.search(r"\bcount\(", s, re.I)], sql


def test_a_done_guide_costs_no_statement(app: Any, actions: Any) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import update

    from server.app import get_db
    from server.models import Node

    with app.app_context():
        db = get_db()
        db.execute(update(Node).values(last_seen=datetime.now(UTC)))
        db.commit()
    actions.login("admin@example.org")
    assert 'class="first-run"' not in actions.client.get("/").get_data(as_text=True)
    with statements(app) as sql:
        page = actions.client.get("/")
    assert page.status_code == 200 and 'class="first-run"' not in page.get_data(as_text=True)
    assert _exists(sql) == [], sql


def test_a_write_request_forgets_the_steps_seen_done(app: Any, actions: Any) -> None:
    """Any write through this app may have undone a step: the next dashboard asks again."""
    actions.login("admin@example.org")
    actions.client.get("/")
    actions.post("/lang", {"lang": "en"})
    with statements(app) as sql:
        actions.client.get("/")
    assert len(_exists(sql)) == 1 and "sites" in _exists(sql)[0], sql


def test_the_members_page_asks_one_statement_for_rows_and_total(app: Any, actions: Any) -> None:
    actions.login("admin@example.org")
    actions.client.get("/members")
    with statements(app) as sql:
        page = actions.client.get("/members")
    assert page.status_code == 200
    members = [s for s in sql if "FROM members" in s]
    assert len(members) == 1, sql


def test_the_refusal_card_is_one_statement(app: Any, actions: Any) -> None:
    """The card names the machine and the member: they come with the refusal, not after it."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from server.app import get_db
    from server.models import Machine, Member, Node, Refusal

    with app.app_context():
        db = get_db()
        machine = db.scalars(select(Machine).order_by(Machine.id)).first()
        member = db.scalars(select(Member).order_by(Member.id)).first()
        node = db.scalars(select(Node).order_by(Node.id)).first()
        assert machine is not None and member is not None and node is not None
        now = datetime.now(UTC)
        db.add(Refusal(event_uuid="card-1", at=now, received_at=now, node_id=node.id,
                       machine_id=machine.id, member_id=member.id, uid="04AABBCC",
                       node_reason="unknown_badge", reason="not_authorized"))
        db.commit()
        names = (machine.name, member.name)
    actions.login("admin@example.org")  # a write request: what the dashboard shares is new
    with statements(app) as sql:
        page = actions.client.get("/").get_data(as_text=True)
    card = page[page.index('class="card last-refusal"'):]
    assert names[0] in card and names[1] in card
    assert len([s for s in sql if "FROM refusals" in s]) == 1, sql
    lazy = [s for s in sql if "WHERE" in s and ("machines.id = " in s.rsplit("WHERE", 1)[1]
                                                or "members.id = " in s.rsplit("WHERE", 1)[1])]
    assert not lazy, sql
    with statements(app) as sql:  # the next poll within the second shares the sentence
        again = actions.client.get("/").get_data(as_text=True)
    assert not [s for s in sql if "FROM refusals" in s], sql
    assert again[again.index('class="card last-refusal"'):].startswith(card[:200])


def test_a_refusal_stored_by_the_ingest_shows_within_a_second(app: Any, actions: Any) -> None:
    import time
    from datetime import UTC, datetime

    from sqlalchemy import select

    from server.app import get_db
    from server.models import Machine, Node, Refusal
    from server.web.refusals import LAST_REFUSAL_TTL_S

    actions.login("admin@example.org")
    actions.client.get("/")
    with app.app_context():  # outside any request of the app, as the ingest writes
        db = get_db()
        machine = db.scalars(select(Machine).order_by(Machine.id)).first()
        node = db.scalars(select(Node).order_by(Node.id)).first()
        assert machine is not None and node is not None
        now = datetime.now(UTC)
        db.add(Refusal(event_uuid="late-1", at=now, received_at=now, node_id=node.id,
                       machine_id=machine.id, member_id=None, uid="04FEEDBE",
                       node_reason="unknown_badge", reason="unknown_badge"))
        db.commit()
    time.sleep(LAST_REFUSAL_TTL_S + 0.05)
    page = actions.client.get("/").get_data(as_text=True)
    card = page[page.index('class="card last-refusal"'):]
    assert machine.name in card.split("</section>")[0]


def test_the_pool_keeps_a_connection_per_web_thread(app: Any) -> None:
    """waitress runs 8 threads: with SQLAlchemy's 5 pooled connections the others were opened
    and closed again on every request under load."""
    assert app.extensions["fabpass.engine"].pool.size() >= 8
