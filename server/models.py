"""The system of record as SQLAlchemy 2 typed models.

Times are stored as UTC (naive in the database, aware in Python, through
`UTCDateTime`) so SQLite and PostgreSQL behave the same. Nothing that an
audit or a report relies on is ever deleted: authorizations are revoked,
members deactivated, badges marked lost.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    insert,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database (same on SQLite and PostgreSQL)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


# ---------------------------------------------------------------- enums


class BadgeStatus(enum.StrEnum):
    active = "active"
    lost = "lost"
    inactive = "inactive"


class MachineKind(enum.StrEnum):
    laser_cutter = "laser_cutter"
    printer_3d = "3d_printer"
    cnc = "cnc"
    other = "other"


class AuthRole(enum.StrEnum):
    user = "user"
    trainer = "trainer"


class UserRole(enum.StrEnum):
    admin = "admin"
    manager = "manager"
    trainer = "trainer"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, length=20,
                values_callable=lambda e: [m.value for m in e], validate_strings=True)


# ---------------------------------------------------------------- organisation


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    machines: Mapped[list[Machine]] = relationship(back_populates="site")


class Member(Base):
    __tablename__ = "members"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    member_no: Mapped[str | None] = mapped_column(String(64), index=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    active_until: Mapped[date | None] = mapped_column(Date)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    erased_at: Mapped[datetime | None] = mapped_column()

    site: Mapped[Site | None] = relationship()
    badges: Mapped[list[Badge]] = relationship(back_populates="member")
    authorizations: Mapped[list[Authorization]] = relationship(
        back_populates="member", foreign_keys="Authorization.member_id"
    )

    # the members page: active members by name, a page at a time, without sorting them all
    __table_args__ = (Index("ix_members_active_name", "active", "name"),)


class Badge(Base):
    __tablename__ = "badges"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(20), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    status: Mapped[BadgeStatus] = mapped_column(_enum(BadgeStatus, "badge_status"),
                                                default=BadgeStatus.active)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    member: Mapped[Member] = relationship(back_populates="badges")


machine_group_members = Table(
    "machine_group_members",
    Base.metadata,
    Column("group_id", ForeignKey("machine_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("machine_id", ForeignKey("machines.id", ondelete="CASCADE"), primary_key=True),
)


class MachineGroup(Base):
    """One training covering several machines (e.g. "all laser cutters", across sites)."""

    __tablename__ = "machine_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))

    machines: Mapped[list[Machine]] = relationship(
        secondary=machine_group_members, back_populates="groups"
    )


class Node(Base):
    __tablename__ = "nodes"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str | None] = mapped_column(String(20))
    relay: Mapped[bool | None] = mapped_column(Boolean)
    last_status: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    acl_version: Mapped[int | None] = mapped_column(BigInteger)  # as reported by the node
    acl_published_version: Mapped[int | None] = mapped_column(BigInteger)
    acl_published_at: Mapped[datetime | None] = mapped_column()
    software: Mapped[str | None] = mapped_column(String(40))
    last_seen: Mapped[datetime | None] = mapped_column()
    clock_ok: Mapped[bool | None] = mapped_column(Boolean)
    mqtt_username: Mapped[str | None] = mapped_column(String(100), unique=True)
    mqtt_password_hash: Mapped[str | None] = mapped_column(String(300))
    revoked_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    site: Mapped[Site] = relationship()
    machine: Mapped[Machine | None] = relationship(back_populates="node", uselist=False)


class Machine(Base):
    __tablename__ = "machines"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    kind: Mapped[MachineKind] = mapped_column(_enum(MachineKind, "machine_kind"),
                                              default=MachineKind.other)
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id"), unique=True)
    requires_authorization: Mapped[bool] = mapped_column(Boolean, default=True)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    lock_reason: Mapped[str | None] = mapped_column(String(500))
    hourly_rate: Mapped[float | None] = mapped_column(Float)  # for member statements
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    site: Mapped[Site] = relationship(back_populates="machines")
    node: Mapped[Node | None] = relationship(back_populates="machine")
    groups: Mapped[list[MachineGroup]] = relationship(
        secondary=machine_group_members, back_populates="machines"
    )


# ---------------------------------------------------------------- web users


user_sites = Table(
    "user_sites",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("site_id", ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True),
)


class User(Base):
    """A web login. A trainer is linked to the member whose trainer authorizations it uses."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[UserRole] = mapped_column(_enum(UserRole, "user_role"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    locale: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login: Mapped[datetime | None] = mapped_column()

    member: Mapped[Member | None] = relationship()
    sites: Mapped[list[Site]] = relationship(secondary=user_sites)


api_token_sites = Table(
    "api_token_sites",
    Base.metadata,
    Column("token_id", ForeignKey("api_tokens.id", ondelete="CASCADE"), primary_key=True),
    Column("site_id", ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True),
)


class ApiToken(Base):
    """A REST API token. A manager token reaches only its `sites` (and shared, site-less
    records), like a manager login; an admin token reaches everything and has no sites."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)  # sha256 of a random token
    prefix: Mapped[str] = mapped_column(String(12))
    role: Mapped[UserRole] = mapped_column(_enum(UserRole, "token_role"), default=UserRole.admin)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    sites: Mapped[list[Site]] = relationship(secondary=api_token_sites)


# ---------------------------------------------------------------- authorizations


class Authorization(Base):
    """Member × machine (or group), never deleted: revocation sets `revoked_at`."""

    __tablename__ = "authorizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machines.id"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("machine_groups.id"), index=True)
    role: Mapped[AuthRole] = mapped_column(_enum(AuthRole, "auth_role"), default=AuthRole.user)
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    granted_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    granted_by_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    granted_via: Mapped[str] = mapped_column(String(20), default="web")  # web|api|cli|signoff|import
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revoke_reason: Mapped[str | None] = mapped_column(String(500))

    member: Mapped[Member] = relationship(back_populates="authorizations",
                                          foreign_keys=[member_id])
    machine: Mapped[Machine | None] = relationship()
    group: Mapped[MachineGroup | None] = relationship()
    granted_by_member: Mapped[Member | None] = relationship(foreign_keys=[granted_by_member_id])


# ---------------------------------------------------------------- usage


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

    machine: Mapped[Machine | None] = relationship()
    node: Mapped[Node | None] = relationship()
    member: Mapped[Member | None] = relationship()

    __table_args__ = (Index("ix_sessions_machine_started", "machine_id", "started_at"),)


class UsageRollup(Base):
    """Pre-aggregated usage of one machine over one local day or month (see server/rollups.py).

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


# ---------------------------------------------------------------- maintenance


class MaintenanceTask(Base):
    """A recurring job on a machine, due every `interval_active_h` active hours."""

    __tablename__ = "maintenance_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    interval_active_h: Mapped[float] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    machine: Mapped[Machine] = relationship()


class MaintenanceLog(Base):
    __tablename__ = "maintenance_logs"

    id: Mapped[int] = mapped_column(primary_key=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("maintenance_tasks.id"))
    done_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str | None] = mapped_column(Text)
    active_hours_at: Mapped[float | None] = mapped_column(Float)  # machine's total at that time

    task: Mapped[MaintenanceTask | None] = relationship()


# ---------------------------------------------------------------- audit


class AuditLog(Base):
    """Every change to authorizations, badges, machines and users: who, what, when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))  # "user:3 a@b", "token:2", "cli", "node:laser-1"
    action: Mapped[str] = mapped_column(String(50))  # e.g. authorization.grant
    entity_type: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Setting(Base):
    """Small server-wide key/value state (e.g. the last issued access-list version)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


# ---------------------------------------------------------------- publisher queues


class AclDirty(Base):
    """A pending access-list republish, written in the same transaction as the change.

    `node_id` NULL means every node. The publisher (possibly in another process)
    polls this table, republishes, then deletes the rows it handled.
    """

    __tablename__ = "acl_dirty"

    id: Mapped[int] = mapped_column(primary_key=True)
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    reason: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutgoingCommand(Base):
    """A command for a node (`stop`, `lock`…), queued by the UI/API, published by the server."""

    __tablename__ = "outgoing_commands"

    id: Mapped[int] = mapped_column(primary_key=True)
    command_id: Mapped[str] = mapped_column(String(36), unique=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"), index=True)
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machines.id"))
    cmd: Mapped[str] = mapped_column(String(20))
    ts: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(200))
    published_at: Mapped[datetime | None] = mapped_column(index=True)


__all__ = [
    "AclDirty", "ApiToken", "AuditLog", "AuthRole", "Authorization", "Badge", "BadgeStatus", "Base",
    "DeadLetter", "Event", "Machine", "MachineGroup", "MachineKind", "MaintenanceLog",
    "MaintenanceTask", "Member", "Node", "OutgoingCommand", "Setting", "Site", "TrainingSignoff",
    "UniqueConstraint", "UnknownBadge", "UsageRollup", "UsageRollupDirty", "UsageRollupState",
    "UsageSession", "User", "UserRole", "api_token_sites", "machine_group_members",
    "user_sites", "utcnow",
]
