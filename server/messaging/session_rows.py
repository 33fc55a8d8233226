"""The fast path's session rows: plain objects in the batch, written with Core once at its end.

The handlers (`server.messaging.handlers`) change a session through its attributes. On the
slow path (one savepoint per message) those are ORM `UsageSession` rows. On the fast path
they are `SessionRow`s: the same attribute names on a slotted object, loaded for the whole
batch in one SELECT and written back in one INSERT of the new rows and one UPDATE per set of
changed columns. The ORM's unit of work (identity map, attribute history, flush ordering)
was the largest share of the ingest's CPU per event (issue 21), and a batch only ever needs
"insert these, set those columns there".

The rules stay in one place: the handlers, and `server.services.billing.settle`, which the
ingest calls for the sessions this batch closed or changed while closed (what the ORM
listener of billing does for ORM writes). The `UPDATE` sets only the columns that changed, so
the report roll-up triggers (`UPDATE OF started_at, ended_at, …`) fire exactly as they did
for the ORM's flush.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from server.models import UsageSession
from server.services.billing import PRICED_COLUMNS

TABLE = cast(Table, UsageSession.__table__)
# every column the ingest reads or writes (pseudonymised_at is the privacy job's alone)
COLUMNS = ("id", "session_uuid", "machine_id", "node_id", "member_id", "badge_uid",
           "started_at", "ended_at", "duration_s", "active_s", "elapsed_s", "last_heartbeat_at",
           "end_reason", "has_started_event", "has_ended_event", "clock_untrusted", "energy_wh")
_WRITABLE = COLUMNS[1:]
_SELECT = select(*(TABLE.c[name] for name in COLUMNS))
_PRICED = frozenset(PRICED_COLUMNS)  # a change to one of them re-prices a closed session


class SessionRow:
    """One session as the fast path holds it: the columns, and what they were when loaded."""

    __slots__ = (*COLUMNS, "_saved")

    id: int | None
    session_uuid: str
    machine_id: int | None
    node_id: int | None
    member_id: int | None
    badge_uid: str
    started_at: Any
    ended_at: Any
    duration_s: float | None
    active_s: float | None
    elapsed_s: float | None
    last_heartbeat_at: Any
    end_reason: str | None
    has_started_event: bool
    has_ended_event: bool
    clock_untrusted: bool
    energy_wh: float | None
    _saved: tuple[Any, ...] | None

    def __init__(self, values: dict[str, Any], *, saved: bool) -> None:
        for name in COLUMNS:
            setattr(self, name, values.get(name))
        self._saved = tuple(values.get(name) for name in COLUMNS) if saved else None

    @classmethod
    def new(cls, **values: Any) -> SessionRow:
        """A session the database does not hold yet (inserted at the end of the batch)."""
        values.setdefault("has_started_event", False)
        values.setdefault("has_ended_event", False)
        values.setdefault("clock_untrusted", False)
        return cls(values, saved=False)

    @property
    def is_new(self) -> bool:
        return self._saved is None

    def changed(self) -> tuple[str, ...]:
        """The columns that differ from the loaded row (all of them for a new row)."""
        if self._saved is None:
            return _WRITABLE
        return tuple(name for name, old in zip(COLUMNS, self._saved, strict=True)
                     if name != "id" and getattr(self, name) != old)

    def values(self, names: Iterable[str]) -> dict[str, Any]:
        return {name: getattr(self, name) for name in names}

    def mark_saved(self) -> None:
        self._saved = tuple(getattr(self, name) for name in COLUMNS)


def load(db: Session, uuids: Collection[str]) -> dict[str, SessionRow]:
    """The sessions of these uuids that exist, in one statement."""
    if not uuids:
        return {}
    rows = db.execute(_SELECT.where(TABLE.c.session_uuid.in_(sorted(uuids))))
    return {row.session_uuid: SessionRow(row._asdict(), saved=True) for row in rows}


def write(db: Session, rows: Iterable[SessionRow]) -> list[SessionRow]:
    """Insert the new rows and update the changed ones; returns the rows to re-price (closed
    ones that are new or whose priced columns changed). Ids of new rows are filled in."""
    new: list[SessionRow] = []
    groups: dict[tuple[str, ...], list[SessionRow]] = defaultdict(list)
    priced: list[SessionRow] = []
    for row in rows:
        if row.is_new:
            new.append(row)
            if row.ended_at is not None:
                priced.append(row)
            continue
        cols = row.changed()
        if cols:
            groups[cols].append(row)
            if row.ended_at is not None and not _PRICED.isdisjoint(cols):
                priced.append(row)
    if new:
        stmt = insert(TABLE).returning(TABLE.c.id, sort_by_parameter_order=True)
        result = db.execute(stmt, [row.values(_WRITABLE) for row in new])
        for row, (new_id,) in zip(new, result.all(), strict=True):
            row.id = new_id
    for cols, members in groups.items():
        change = (update(TABLE).where(TABLE.c.id == bindparam("_id"))
                  .values({name: bindparam(name) for name in cols}))
        db.connection().execute(change, [{"_id": row.id, **row.values(cols)} for row in members])
    for row in new:
        row.mark_saved()
    for members in groups.values():
        for row in members:
            row.mark_saved()
    return priced


__all__ = ["COLUMNS", "SessionRow", "load", "write"]
