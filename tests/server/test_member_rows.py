"""The members page's rows (`services.list_member_rows`) on both databases: on SQLite they come
as one row of JSON (one GIL wait instead of one per row, issue 21); whatever the path, they
are `list_members`' members in its order, with the same total, page by page."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from server import services

NAMES = ["Zoé", "zoe", "Émile", "Emile", "Ève", "ève", "Ålice", "alice", "Alice", "Alice",
         "Łukasz", "Ünal", "日本", "O'Brien", 'Quote "Q"', "back\\slash", "tab\there", "Øyvind",
         "émile", "Bob"]


def test_member_rows_are_list_members_in_its_order(db: Session, lab: dict[str, Any]) -> None:
    for i, name in enumerate(NAMES):
        m = services.create_member(db, name, email=f"m{i}@example.org", member_no=f"N{i}",
                                   site="lab" if i % 3 else None, actor="test")
        if i % 5 == 0:
            m.active = False
    db.commit()
    for kwargs in ({}, {"active": True}, {"q": "li"}, {"q": "nobody"}):
        for page in (1, 2, 3, 9):
            rows = services.list_member_rows(db, page=page, per_page=7, **kwargs)
            ref = services.list_members(db, page=page, per_page=7, **kwargs)
            assert [(r.id, r.name, r.member_no, r.email, bool(r.active), r.site_id)
                    for r in rows.items] == [
                (m.id, m.name, m.member_no, m.email, m.active, m.site_id) for m in ref.items]
            assert rows.total == ref.total
    erased = services.list_member_rows(db, per_page=100)
    assert all(r.erased_at is None for r in erased.items)
    assert len(erased.items) == len(NAMES) + 1  # lab's own member
