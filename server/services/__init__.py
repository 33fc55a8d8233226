"""Domain rules, no Flask: every web view, API route, CLI command and the ingest call these.

One module per concern (members, machines, trainings, users, access, audit, ...). Each operation
takes the SQLAlchemy Session and an `actor` ("user:3 alice@x", "token:2 erp", "cli",
"node:laser-1"), validates its input (raising the errors of `server.errors`), writes an AuditLog
row for every change, marks the access lists it affects as dirty (`AclDirty` rows, in the same
transaction, so a publisher in another process sees them) and flushes. Callers commit.

The names are re-exported here so that `from server import services; services.grant(...)` works;
inside the package, modules import each other by module."""

from __future__ import annotations

from server.services import billing  # paid use: its session listener settles charges
from server.services.access import (
    authorization_in_sites,
    group_ids_in_sites,
    machine_ids_in_sites,
    member_in_sites,
)
from server.services.audit import (
    audit,
    list_audit,
)
from server.services.common import (
    DEFAULT_PER_PAGE,
    MAX_PER_PAGE,
    Page,
    check_page,
    find_member,
    get_authorization,
    get_badge,
    get_group,
    get_group_by_slug,
    get_machine,
    get_machine_by_slug,
    get_member,
    get_node_by_slug,
    get_site,
    get_site_by_slug,
    now_utc,
    paginate,
)
from server.services.dirty import (
    acl_changed,
    authorization_node_ids,
    group_machine_ids,
    machine_node_ids,
    mark_all_dirty,
    mark_nodes_dirty,
    member_node_ids,
)
from server.services.logs import (
    dead_letter_counts,
    list_dead_letters,
    list_sessions,
)
from server.services.machines import (
    create_group,
    create_machine,
    list_groups,
    list_machines,
    list_nodes,
    send_command,
    set_group_machines,
    set_machine_lock,
    update_machine,
)
from server.services.members import (
    create_member,
    deactivate_member,
    enrol_badge,
    list_members,
    list_unknown_badges,
    record_unknown_badge,
    set_badge_status,
    update_member,
)
from server.services.sites import (
    create_site,
    list_sites,
)
from server.services.trainings import (
    grant,
    list_authorizations,
    revoke,
    trainer_machine_ids,
    valid_authorization_clause,
    valid_machine_ids_for,
)
from server.services.users import (
    create_token,
    create_user,
)
from server.services.validation import (
    EMAIL_RE,
    date_field,
    datetime_field,
    email_field,
    enum_field,
    slug_field,
    tags_field,
    text_field,
    timezone_field,
    uid_field,
    validate_policy,
)

__all__ = [
    "DEFAULT_PER_PAGE",
    "EMAIL_RE",
    "MAX_PER_PAGE",
    "Page",
    "acl_changed",
    "audit",
    "billing",
    "authorization_in_sites",
    "authorization_node_ids",
    "check_page",
    "create_group",
    "create_machine",
    "create_member",
    "create_site",
    "create_token",
    "create_user",
    "date_field",
    "datetime_field",
    "deactivate_member",
    "dead_letter_counts",
    "email_field",
    "enrol_badge",
    "enum_field",
    "find_member",
    "get_authorization",
    "get_badge",
    "get_group",
    "get_group_by_slug",
    "get_machine",
    "get_machine_by_slug",
    "get_member",
    "get_node_by_slug",
    "get_site",
    "get_site_by_slug",
    "grant",
    "group_ids_in_sites",
    "group_machine_ids",
    "list_audit",
    "list_authorizations",
    "list_dead_letters",
    "list_groups",
    "list_machines",
    "list_members",
    "list_nodes",
    "list_sessions",
    "list_sites",
    "list_unknown_badges",
    "machine_ids_in_sites",
    "machine_node_ids",
    "mark_all_dirty",
    "mark_nodes_dirty",
    "member_in_sites",
    "member_node_ids",
    "now_utc",
    "paginate",
    "record_unknown_badge",
    "revoke",
    "send_command",
    "set_badge_status",
    "set_group_machines",
    "set_machine_lock",
    "slug_field",
    "tags_field",
    "text_field",
    "timezone_field",
    "trainer_machine_ids",
    "uid_field",
    "update_machine",
    "update_member",
    "valid_authorization_clause",
    "valid_machine_ids_for",
    "validate_policy",
]
