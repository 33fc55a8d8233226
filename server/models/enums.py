"""The enumerations stored in columns (as text, so SQLite and PostgreSQL agree).
"""

from __future__ import annotations

import enum


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
