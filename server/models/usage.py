"""What nodes report: events, sessions (and their roll-ups kept by triggers), refusals.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    event,
    false,
    insert,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.models.base import Base, utcnow
from server.models.core import Machine, Member, Node


class UsageSession(Base):
    """One use of a machine, built from started/heartbeat/ended events in any order."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_uuid: Mapped[str] = mapped_column(String(36), unique=True)
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machines.id"), index=True)
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id"), index=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    badge_uid: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None] = mapped_column(index=True)  # open sessions: IS NULL
    duration_s: Mapped[float | None] = mapped_column(Float)
    active_s: Mapped[float | None] = mapped_column(Float)
    elapsed_s: Mapped[float | None] = mapped_column(Float)  # last heartbeat, while open
    last_heartbeat_at: Mapped[datetime | None] = mapped_column()
    end_reason: Mapped[str | None] = mapped_column(String(20))  # contract reasons, or "lost"
    has_started_event: Mapped[bool] = mapped_column(Boolean, default=False)
    has_ended_event: Mapped[bool] = mapped_column(Boolean, default=False)
    pseudonymised_at: Mapped[datetime | None] = mapped_column()
    # placed from the receive time: the node's wall clock was not believed (services/usage.py)
    clock_untrusted: Mapped[bool] = mapped_column(Boolean, server_default=false())
    energy_wh: Mapped[float | None] = mapped_column(Float)  # measured by a smart plug (issue 16)

    machine: Mapped[Machine | None] = relationship()
    node: Mapped[Node | None] = relationship()
    member: Mapped[Member | None] = relationship()

    __table_args__ = (Index("ix_sessions_machine_started", "machine_id", "started_at"),)


class UsageRollup(Base):
    """Pre-aggregated usage of one machine over one local day or month (see server/reports/rollups.py).

    Derived data: rebuilt from `sessions` whenever `usage_rollup_dirty` says so. `member_ids`
    and `starter_ids` are sorted little-endian uint32 arrays: members with time in the period,
    and, for visits, members who started a session there (a month holds ``member << 5 | day - 1``
    per member-day, so that visits add up by month without reading every day)."""

    __tablename__ = "usage_rollup"

    grain: Mapped[str] = mapped_column(String(5), primary_key=True)  # "day" | "month"
    machine_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    period: Mapped[date] = mapped_column(Date, primary_key=True)  # first local day
    tz: Mapped[str] = mapped_column(String(64))
    sessions: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)
    active_seconds: Mapped[float] = mapped_column(Float)
    energy_wh: Mapped[float] = mapped_column(Float, server_default="0")  # issue 16
    members: Mapped[int] = mapped_column(Integer)
    member_ids: Mapped[bytes] = mapped_column(LargeBinary)
    starter_ids: Mapped[bytes] = mapped_column(LargeBinary)


class UsageRollupDirty(Base):
    """A closed session that was written (inserted, changed, deleted): its machine and time span
    need their roll-up cells rebuilt. Filled by database triggers on `sessions`, so every writer
    (ingest, privacy jobs, imports, hand-made SQL) is covered."""

    __tablename__ = "usage_rollup_dirty"

    id: Mapped[int] = mapped_column(primary_key=True)
    op: Mapped[str] = mapped_column(String(3))  # "add" | "chg" (see ROLLUP_TRIGGERS_SQLITE)
    session_id: Mapped[int | None] = mapped_column(Integer)
    machine_id: Mapped[int | None] = mapped_column(Integer)
    t_from: Mapped[datetime] = mapped_column()
    t_to: Mapped[datetime] = mapped_column()


class UsageRollupState(Base):
    """One row: the longest wall-clock span of any closed session seen (bounds the look-back of
    partial-day queries) and how many refreshes ran."""

    __tablename__ = "usage_rollup_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    max_wall_s: Mapped[float] = mapped_column(Float, default=0.0)
    refreshes: Mapped[int] = mapped_column(BigInteger, default=0)


# op "add": a session that no cell counts yet (inserted closed, or just closed) -> its cells can
# be updated by adding it; op "chg": a counted version changed or went away -> rebuild its days
ROLLUP_TRIGGERS_SQLITE = (
    """CREATE TRIGGER trg_sessions_rollup_ins AFTER INSERT ON sessions
WHEN NEW.ended_at IS NOT NULL BEGIN
  INSERT INTO usage_rollup_dirty (op, session_id, machine_id, t_from, t_to)
  VALUES ('add', NEW.id, NEW.machine_id, NEW.started_at, NEW.ended_at);
END""",
    """CREATE TRIGGER trg_sessions_rollup_upd
AFTER UPDATE OF started_at, ended_at, duration_s, active_s, member_id, machine_id ON sessions
WHEN OLD.ended_at IS NOT NULL OR NEW.ended_at IS NOT NULL BEGIN
  INSERT INTO usage_rollup_dirty (op, session_id, machine_id, t_from, t_to)
  SELECT 'chg', OLD.id, OLD.machine_id, OLD.started_at, OLD.ended_at
  WHERE OLD.ended_at IS NOT NULL;
  INSERT INTO usage_rollup_dirty (op, session_id, machine_id, t_from, t_to)
  SELECT CASE WHEN OLD.ended_at IS NULL THEN 'add' ELSE 'chg' END, NEW.id, NEW.machine_id,
         NEW.started_at, NEW.ended_at
  WHERE NEW.ended_at IS NOT NULL;
END""",
    """CREATE TRIGGER trg_sessions_rollup_del AFTER DELETE ON sessions
WHEN OLD.ended_at IS NOT NULL BEGIN
  INSERT INTO usage_rollup_dirty (op, session_id, machine_id, t_from, t_to)
  VALUES ('chg', OLD.id, OLD.machine_id, OLD.started_at, OLD.ended_at);
END""",
)


ROLLUP_TRIGGERS_POSTGRESQL = (
    """CREATE FUNCTION fabpass_sessions_rollup_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  was_closed boolean := false;
BEGIN
  IF TG_OP <> 'INSERT' THEN
    IF OLD.ended_at IS NOT NULL THEN
      was_closed := true;
      INSERT INTO usage_rollup_dirty (op, session_id, machine_id, t_from, t_to)
      VALUES ('chg', OLD.id, OLD.machine_id, OLD.started_at, OLD.ended_at);
    END IF;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    IF NEW.ended_at IS NOT NULL THEN
      INSERT INTO usage_rollup_dirty (op, session_id, machine_id, t_from, t_to)
      VALUES (CASE WHEN was_closed THEN 'chg' ELSE 'add' END, NEW.id, NEW.machine_id,
              NEW.started_at, NEW.ended_at);
    END IF;
  END IF;
  RETURN NULL;
END $$""",
    """CREATE TRIGGER trg_sessions_rollup
AFTER INSERT OR DELETE OR UPDATE OF started_at, ended_at, duration_s, active_s, member_id, machine_id
ON sessions FOR EACH ROW EXECUTE FUNCTION fabpass_sessions_rollup_dirty()""",
    """CREATE FUNCTION fabpass_sessions_rollup_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM usage_rollup;
  DELETE FROM usage_rollup_dirty;
  RETURN NULL;
END $$""",
    """CREATE TRIGGER trg_sessions_rollup_truncate AFTER TRUNCATE ON sessions
FOR EACH STATEMENT EXECUTE FUNCTION fabpass_sessions_rollup_truncated()""",
)


ROLLUP_TRIGGER_DROPS = {
    "sqlite": ("DROP TRIGGER IF EXISTS trg_sessions_rollup_ins",
               "DROP TRIGGER IF EXISTS trg_sessions_rollup_upd",
               "DROP TRIGGER IF EXISTS trg_sessions_rollup_del"),
    "postgresql": ("DROP TRIGGER IF EXISTS trg_sessions_rollup ON sessions",
                   "DROP TRIGGER IF EXISTS trg_sessions_rollup_truncate ON sessions",
                   "DROP FUNCTION IF EXISTS fabpass_sessions_rollup_dirty()",
                   "DROP FUNCTION IF EXISTS fabpass_sessions_rollup_truncated()"),
}


def rollup_triggers(dialect: str) -> tuple[str, ...]:
    """The DDL that makes every write to a closed session mark its roll-up cells dirty."""
    if dialect == "sqlite":
        return ROLLUP_TRIGGERS_SQLITE
    if dialect == "postgresql":
        return ROLLUP_TRIGGERS_POSTGRESQL
    raise NotImplementedError(f"usage roll-ups need triggers for {dialect}")


@event.listens_for(Base.metadata, "after_create")
def _create_rollup_triggers(_target: Any, connection: Any, **_kw: Any) -> None:
    """`create_all` (tests, fresh installs without Alembic) gets the same triggers and state row
    as migration 0002."""
    if "usage_rollup_dirty" not in Base.metadata.tables:
        return
    for ddl in rollup_triggers(connection.dialect.name):
        connection.exec_driver_sql(ddl)
    connection.execute(insert(UsageRollupState).values(id=1, max_wall_s=0.0, refreshes=0))


class Event(Base):
    """Every accepted event, raw; `event_id` is the only de-duplication key."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id"), index=True)
    node_slug: Mapped[str] = mapped_column(String(63))
    type: Mapped[str] = mapped_column(String(64), index=True)
    ts: Mapped[datetime] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    boot: Mapped[str] = mapped_column(String(36))
    seq: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    skew_s: Mapped[float | None] = mapped_column(Float)
    clock_skewed: Mapped[bool] = mapped_column(Boolean, default=False)


class DeadLetter(Base):
    """A rejected MQTT payload, kept with the reason so nothing is silently lost."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    topic: Mapped[str] = mapped_column(String(500))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str | None] = mapped_column(String(36), index=True)
    node_slug: Mapped[str | None] = mapped_column(String(63))
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class UnknownBadge(Base):
    """A UID tapped somewhere but not enrolled: a manager can assign it to a member."""

    __tablename__ = "unknown_badges"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(20), unique=True)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id"))
    count: Mapped[int] = mapped_column(Integer, default=1)

    last_node: Mapped[Node | None] = relationship()


class TrainingSignoff(Base):
    """A trainer sign-off from a node, granted or refused (with the reason)."""

    __tablename__ = "training_signoffs"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machines.id"))
    trainer_uid: Mapped[str] = mapped_column(String(20))
    trainee_uid: Mapped[str] = mapped_column(String(20))
    trainer_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    trainee_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    outcome: Mapped[str] = mapped_column(String(20))  # granted | refused | already
    reason: Mapped[str | None] = mapped_column(String(200))
    authorization_id: Mapped[int | None] = mapped_column(ForeignKey("authorizations.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
