"""The members page's column query (`list_member_rows`) lists exactly what `list_members` does,
with every filter, on SQLite and PostgreSQL (issue 21: the page no longer loads ORM objects).
On SQLite the rows come as one row of JSON (one GIL wait instead of one per row); whatever the
path, they are `list_members`' members in its order, with the same total, page by page."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from server import services as s


def test_member_rows_match_the_members_list_under_every_filter(db: Session, lab: Any) -> None:
    other = s.create_site(db, "north", "Atelier Nord", "Europe/Paris", actor="cli")
    bob = s.create_member(db, "Bob Nord", "bob@north.example", "B7", "north", actor="cli")
    s.enrol_badge(db, bob.id, "04BB0B0B", actor="cli")
    carl = s.create_member(db, "Carl Partout", None, None, None, actor="cli")
    gone = s.create_member(db, "Dora Partie", "dora@example.org", None, "lab", actor="cli")
    s.deactivate_member(db, gone.id, actor="cli")
    db.commit()
    cases: list[dict[str, Any]] = [
        {}, {"active": True}, {"active": False}, {"q": "nord"}, {"q": "BB0B"},
        {"q": "bob@north"}, {"q": "bob@north", "contact_site_ids": {lab["site"].id}},
        {"site": "north"}, {"site_ids": {other.id}}, {"page": 2, "per_page": 2}]
    for kw in cases:
        objects = s.list_members(db, **kw)
        rows = s.list_member_rows(db, **kw)
        assert [r.id for r in rows.items] == [m.id for m in objects.items], kw
        assert rows.total == objects.total, kw
        for r, m in zip(rows.items, objects.items, strict=True):
            assert (r.name, r.member_no, r.email, r.active, r.site_id) == \
                (m.name, m.member_no, m.email, m.active, m.site_id)
    assert s.list_member_rows(db, q="bob@north", contact_site_ids={lab["site"].id}).total == 0
    assert [r.id for r in s.list_member_rows(db, active=False).items] == [gone.id]
    assert carl.id in {r.id for r in s.list_member_rows(db, site_ids={other.id}).items}


def test_member_rows_count_rides_in_the_page_statement(db: Session, lab: Any) -> None:
    """One statement for a page and its total (issue 21); a page past the end still says how
    many members match, and an empty list says 0."""
    from sqlalchemy import event

    for i in range(5):
        s.create_member(db, f"Zed {i}", None, f"Z{i}", "lab", actor="cli")
    db.commit()
    expected = s.list_members(db, per_page=2).total
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = db.get_bind()
    event.listen(engine, "before_cursor_execute", count)
    try:
        rows = s.list_member_rows(db, page=2, per_page=2)
        assert len(statements) == 1, statements
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert rows.total == expected and len(rows.items) == 2
    past = s.list_member_rows(db, page=1000, per_page=2)
    assert past.items == [] and past.total == expected
    assert s.list_member_rows(db, q="nobody-by-this-name").total == 0


NAMES = ["Zoé", "zoe", "Émile", "Emile", "Ève", "ève", "Ålice", "alice", "Alice", "Alice",
         "Łukasz", "Ünal", "日本", "O'Brien", 'Quote "Q"', "back\\slash", "tab\there", "Øyvind",
         "émile", "Bob"]


def test_member_rows_are_list_members_in_its_order(db: Session, lab: dict[str, Any]) -> None:
    for i, name in enumerate(NAMES):
        m = s.create_member(db, name, email=f"m{i}@example.org", member_no=f"N{i}",
                                   site="lab" if i % 3 else None, actor="test")
        if i % 5 == 0:
            m.active = False
    db.commit()
    for kwargs in ({}, {"active": True}, {"q": "li"}, {"q": "nobody"}):
        for page in (1, 2, 3, 9):
            rows = s.list_member_rows(db, page=page, per_page=7, **kwargs)
            ref = s.list_members(db, page=page, per_page=7, **kwargs)
            assert [(r.id, r.name, r.member_no, r.email, bool(r.active), r.site_id)
                    for r in rows.items] == [
                (m.id, m.name, m.member_no, m.email, m.active, m.site_id) for m in ref.items]
            assert rows.total == ref.total
    erased = s.list_member_rows(db, per_page=100)
    assert all(r.erased_at is None for r in erased.items)
    assert len(erased.items) == len(NAMES) + 1  # lab's own member
