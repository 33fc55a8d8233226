"""What a person reads instead of a code: one translated label per reason, state, role, kind,
badge status, audit action, event type and CSV column.

Codes (`badge_out`, `machine_locked`, `authorization.revoke`) are the wire and database
vocabulary; no page shows one. Templates call `label(family, code)`; Python callers use the
same function. A code without a label comes back unchanged, so the French page test (which
fails on any snake_case or dotted identifier) catches a family that grew without its label.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask_babel import lazy_gettext as _l

END_REASONS: Mapping[str, Any] = {
    "badge_out": _l("badged out"),
    "badge_removed": _l("badge removed"),
    "timeout": _l("time limit reached"),
    "idle": _l("machine idle"),
    "handover": _l("handed over"),
    "remote_stop": _l("stopped from the web"),
    "revoked": _l("training revoked"),
    "shutdown": _l("node shut down"),
    "power_loss": _l("power cut"),
}

DENY_REASONS: Mapping[str, Any] = {
    "unknown_badge": _l("unknown badge"),
    "badge_lost": _l("badge reported lost"),
    "not_authorized": _l("not trained on this machine"),
    "expired": _l("training expired"),
    "revoked": _l("training revoked"),
    "badge_inactive": _l("badge disabled"),
    "member_inactive": _l("membership inactive"),
    "machine_locked": _l("machine locked"),
    "in_use": _l("machine already in use"),
    "acl_stale": _l("access list too old"),
    "no_acl": _l("no access list yet"),
    "booked": _l("machine booked by someone else"),
    "no_booking": _l("no booking for now"),
    "no_credit": _l("not enough credit"),
    "actuator_failed": _l("the plug did not switch on"),
    "actuator_offline": _l("the plug is offline"),
}

STATES: Mapping[str, Any] = {
    "idle": _l("Free"),
    "in_use": _l("In use"),
    "finishing": _l("Finishing"),
    "grace": _l("Grace period"),
    "signoff": _l("Waiting for sign-off"),
    "locked": _l("Locked"),
    "offline": _l("Node offline"),
    "no_acl": _l("Waiting for its list"),
}

ROLES: Mapping[str, Any] = {
    "user": _l("User"),
    "trainer": _l("Trainer"),
    "admin": _l("Admin"),
    "manager": _l("Manager"),
}

KINDS: Mapping[str, Any] = {
    "laser_cutter": _l("Laser cutter"),
    "3d_printer": _l("3D printer"),
    "cnc": _l("CNC machine"),
    "other": _l("Other machine"),
}

BADGE_STATUS: Mapping[str, Any] = {
    "active": _l("Works"),
    "lost": _l("Lost"),
    "inactive": _l("Disabled"),
}

EVENT_TYPES: Mapping[str, Any] = {
    "session.started": _l("session started"),
    "session.heartbeat": _l("session running"),
    "session.ended": _l("session ended"),
    "badge.denied": _l("badge refused"),
    "training.signed": _l("training signed off"),
    "status": _l("status"),
}

# Webhook events (contract section 6) and the state of one delivery.
WEBHOOK_EVENTS: Mapping[str, Any] = {
    "session.started": _l("session started"),
    "session.ended": _l("session ended"),
    "badge.denied": _l("badge refused"),
    "node.online": _l("node back online"),
    "node.offline": _l("node offline"),
    "maintenance.due": _l("maintenance due"),
    "booking.created": _l("booking made"),
    "booking.cancelled": _l("booking cancelled"),
}
DELIVERY_STATUS: Mapping[str, Any] = {
    "queued": _l("waiting"),
    "delivered": _l("delivered"),
    "failed": _l("failed"),
}

# The kinds of change in the audit log, as the filter offers them.
ACTIONS: Mapping[str, Any] = {
    "authorization.grant": _l("training granted"),
    "authorization.revoke": _l("training revoked"),
    "badge.enrol": _l("badge enrolled"),
    "badge.status": _l("badge status changed"),
    "group.create": _l("machine group created"),
    "group.machines": _l("machine group changed"),
    "group.update": _l("machine group renamed"),
    "machine.command": _l("command sent to a machine"),
    "machine.create": _l("machine created"),
    "machine.lock": _l("machine locked"),
    "machine.unlock": _l("machine unlocked"),
    "machine.update": _l("machine changed"),
    "member.create": _l("member created"),
    "member.deactivate": _l("member deactivated"),
    "member.erase": _l("member erased"),
    "member.update": _l("member changed"),
    "node.bind": _l("node attached to a machine"),
    "node.create": _l("node created"),
    "node.credentials": _l("node credentials made"),
    "node.revoke": _l("node credentials revoked"),
    "privacy.pseudonymise": _l("old records pseudonymised"),
    "site.create": _l("site created"),
    "token.create": _l("API token created"),
    "training.refused": _l("sign-off refused"),
    "user.create": _l("web login created"),
    "user.update": _l("web login changed"),
}

# CSV column headings of the web exports in a person's language (the API keeps the keys).
COLUMNS: Mapping[str, Any] = {
    "month": _l("Month"), "week": _l("Week"), "day": _l("Day"), "machine": _l("Machine"),
    "machine_group": _l("Machine group"), "kind": _l("Machine family"), "member": _l("Member"),
    "member_tag": _l("Member category"), "site": _l("Site"), "reason": _l("Reason"),
    "sessions": _l("Sessions"), "hours": _l("Session hours"), "active_hours": _l("Active hours"),
    "members": _l("Members"), "kwh": _l("Energy (kWh)"), "visits": _l("Visits"), "name": _l("Name"), "denied": _l("Refusals"),
    "rate": _l("Rate"), "amount": _l("Amount"), "done_at": _l("Done on"), "task": _l("Task"),
    "active_hours_at": _l("Active hours then"), "done_by_user_id": _l("Done by (login)"),
    "note": _l("Note"), "state": _l("State"), "interval_h": _l("Every (hours)"),
    "hours_since": _l("Hours since"), "remaining_h": _l("Hours left"),
    "new_members": _l("New members"), "machine_name": _l("Machine"),
    "started_at": _l("Started"), "ended_at": _l("Ended"), "end_reason": _l("Ended because"),
    "clock_untrusted": _l("Node clock off"),
}

FAMILIES: Mapping[str, Mapping[str, Any]] = {
    "webhook_event": WEBHOOK_EVENTS, "delivery_status": DELIVERY_STATUS,
    "end_reason": END_REASONS, "deny_reason": DENY_REASONS, "state": STATES, "role": ROLES,
    "kind": KINDS, "badge_status": BADGE_STATUS, "event": EVENT_TYPES, "action": ACTIONS,
    "column": COLUMNS,
}


def label(family: str, code: Any) -> str:
    """The translated label of `code` in `family`; the code itself when none exists."""
    if code is None:
        return ""
    key = str(getattr(code, "value", code))
    found = FAMILIES[family].get(key)
    return key if found is None else str(found)


def choices(family: str) -> list[tuple[str, str]]:
    """(code, label) pairs for a select, sorted by label in the page's language."""
    return sorted(((k, str(v)) for k, v in FAMILIES[family].items()), key=lambda kv: kv[1].lower())


def when(value: Any) -> str:
    """A date and time in the page's language and the server's zone ("3 déc. 2026, 14:02")."""
    from flask_babel import format_datetime

    return "" if value is None else str(format_datetime(value, "d MMM y, HH:mm"))


def day(value: Any) -> str:
    """A day in the page's language ("1 janv. 2026")."""
    from flask_babel import format_date

    return "" if value is None else str(format_date(value, "medium"))


def number(value: Any, digits: int = 1, fixed: bool = True) -> str:
    """A number in the page's language with `digits` decimals ("55,1"); `fixed=False` drops
    trailing zeros ("0,5", "100")."""
    from flask_babel import format_decimal

    if value is None:
        return "—"
    decimals = ("0" if fixed else "#") * digits
    return str(format_decimal(value, format="#,##0" + ("." + decimals if digits else "")))


def person(member: Any) -> str:
    """A member's name, or "(erased)" in the page's language once their data was erased."""
    from flask_babel import gettext

    if member is None:
        return ""
    if getattr(member, "erased_at", None) is not None:
        return gettext("(erased)")
    return str(member.name)


def column_headers(columns: list[str] | tuple[str, ...]) -> dict[str, str]:
    return {c: label("column", c) for c in columns}


__all__ = ["ACTIONS", "BADGE_STATUS", "COLUMNS", "DENY_REASONS", "END_REASONS", "EVENT_TYPES",
           "FAMILIES", "KINDS", "ROLES", "STATES", "choices", "column_headers", "day", "label",
           "number", "person", "when"]
