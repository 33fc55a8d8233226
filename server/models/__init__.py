"""The system of record as SQLAlchemy 2 typed models, one module per concern.

Times are stored as UTC (naive in the database, aware in Python, through `UTCDateTime`) so
SQLite and PostgreSQL behave the same. Nothing that an audit or a report relies on is ever
deleted: authorizations are revoked, members deactivated, badges marked lost.

Adding models for a new feature: write `server/models/<feature>.py` (classes on
`server.models.base.Base`, other models referenced by class name in relationships) and add its
import line below, so the mapper registry and Alembic see the tables. No shared file changes.
"""

from __future__ import annotations

from sqlalchemy import UniqueConstraint

from server.models.base import (
    NAMING,
    Base,
    UTCDateTime,
    enum_column,
    utcnow,
)
from server.models.billing import Charge, Tariff, TopUp
from server.models.bookings import (
    Booking,
    BookingFeed,
)
from server.models.core import (
    Authorization,
    Badge,
    Machine,
    MachineGroup,
    Member,
    Node,
    Site,
    machine_group_members,
)
from server.models.energy import ACTUATOR_TYPES, NodeActuator, NodePlug
from server.models.enums import (
    AuthRole,
    BadgeStatus,
    MachineKind,
    UserRole,
)
from server.models.integrations import FabmanagerConfig, FabmanagerLink, FabmanagerRun
from server.models.logins import WebLogin
from server.models.maintenance import (
    MaintenanceLog,
    MaintenanceTask,
)
from server.models.notifications import (
    AlertOptOut,
    AlertState,
    MachineWatch,
    NoticeOptIn,
    NoticeSent,
    OutgoingMail,
    PasswordToken,
    Webhook,
    WebhookDelivery,
)
from server.models.refusals import (
    PendingEnrolment,
    Refusal,
)
from server.models.system import (
    AclDirty,
    AuditLog,
    OutgoingCommand,
    Setting,
)
from server.models.usage import (
    ROLLUP_TRIGGER_DROPS,
    ROLLUP_TRIGGERS_POSTGRESQL,
    ROLLUP_TRIGGERS_SQLITE,
    DeadLetter,
    Event,
    TrainingSignoff,
    UnknownBadge,
    UsageRollup,
    UsageRollupDirty,
    UsageRollupState,
    UsageSession,
    rollup_triggers,
)
from server.models.users import (
    ApiToken,
    User,
    api_token_sites,
    user_sites,
)

__all__ = [
    "FabmanagerConfig", "FabmanagerLink", "FabmanagerRun",
    "UniqueConstraint",
    "ACTUATOR_TYPES",
    "NodeActuator",
    "NodePlug",
    "AclDirty",
    "AlertOptOut",
    "AlertState",
    "MachineWatch",
    "NoticeOptIn",
    "NoticeSent",
    "OutgoingMail",
    "PasswordToken",
    "Webhook",
    "WebhookDelivery",
    "ApiToken",
    "AuditLog",
    "AuthRole",
    "Authorization",
    "Badge",
    "BadgeStatus",
    "Booking",
    "BookingFeed",
    "Charge",
    "Base",
    "DeadLetter",
    "Event",
    "Machine",
    "MachineGroup",
    "MachineKind",
    "MaintenanceLog",
    "MaintenanceTask",
    "Member",
    "NAMING",
    "Node",
    "OutgoingCommand",
    "PendingEnrolment",
    "ROLLUP_TRIGGERS_POSTGRESQL",
    "ROLLUP_TRIGGERS_SQLITE",
    "ROLLUP_TRIGGER_DROPS",
    "Refusal",
    "Setting",
    "Site",
    "Tariff",
    "TopUp",
    "TrainingSignoff",
    "UTCDateTime",
    "UnknownBadge",
    "UsageRollup",
    "UsageRollupDirty",
    "UsageRollupState",
    "UsageSession",
    "User",
    "UserRole",
    "api_token_sites",
    "enum_column",
    "machine_group_members",
    "rollup_triggers",
    "user_sites",
    "utcnow",
    "WebLogin",
]
