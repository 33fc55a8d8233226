"""Who may do what (contract section 6), in one place: checks on one object and SQL filters.

A consortium shares one member base. A manager of sites S:

- reads every member's name, member number, home site, badges and trainings, but e-mail and
  other contact details only of members homed at S (a member with no home site counts as homed
  at every site): `can_read_contact`;
- edits members homed at S: `can_edit_member`;
- reads sessions, refusals, audit entries, reports, nodes and machine pages of S only:
  `can_read_site`, and `read_sites` / `*_in_sites` for lists (filtered before pagination);
- grants and revokes on machines and groups of S, for any member: `can_change_trainings`.

An admin may do everything. A trainer reads what every login reads (members with contact
details, machines) and grants or revokes only on the machines where their linked member holds a
valid trainer authorization. Every web view, API route, CLI command and report page asks here;
nothing else decides.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, cast, false, or_, select, true
from sqlalchemy.orm import Session

from server.models import (
    AuditLog,
    Authorization,
    Badge,
    Machine,
    Member,
    Node,
    TrainingSignoff,
    UserRole,
    machine_group_members,
)

ADMIN = UserRole.admin.value
MANAGER = UserRole.manager.value
TRAINER = UserRole.trainer.value
ALL_ROLES = (ADMIN, MANAGER, TRAINER)


@dataclass
class Principal:
    """A snapshot of the logged-in user (or API token) for one request.

    Kept detached from the ORM so templates and checks never hit a closed session.
    """

    id: int
    email: str
    role: str
    site_ids: frozenset[int] = field(default_factory=frozenset)
    member_id: int | None = None
    kind: str = "user"  # user | token

    # Flask-Login's protocol
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)

    @property
    def actor(self) -> str:
        """How the audit log names this principal."""
        return f"{self.kind}:{self.id} {self.email}"

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    @property
    def is_manager(self) -> bool:
        return self.role in (ADMIN, MANAGER)


# ---------------------------------------------------------------- one object


def can_manage_site(p: Principal, site_id: int | None) -> bool:
    """Edit what is homed at this site (None: shared, any manager)."""
    if p.role == ADMIN:
        return True
    if p.role != MANAGER:
        return False
    return site_id is None or site_id in p.site_ids


def can_edit_member(p: Principal, member: Member) -> bool:
    return can_manage_site(p, member.site_id)


def can_read_contact(p: Principal, member: Member | None = None, *,
                     site_id: int | None = None) -> bool:
    """E-mail and other contact details of this member (or of a member homed at `site_id`)."""
    if member is not None:
        site_id = member.site_id
    if p.role == MANAGER:
        return site_id is None or site_id in p.site_ids
    return True


def can_read_site(p: Principal, site_id: int | None) -> bool:
    """Sessions, refusals, audit entries, reports, nodes and machine pages of this site."""
    if p.role == MANAGER:
        return site_id is not None and site_id in p.site_ids
    return True


def can_manage_machine(p: Principal, machine: Machine) -> bool:
    """Edit, lock, stop this machine."""
    return p.role == ADMIN or (p.role == MANAGER and machine.site_id in p.site_ids)


def can_change_trainings(db: Session, p: Principal, machines: Iterable[Machine]) -> bool:
    """Grant or revoke a training on all of these machines (one, or a whole group), for any
    member: an admin; a manager when every machine is on their sites; a trainer when they are a
    trainer on every one of them. An empty group: admins only."""
    machines = list(machines)
    if p.role == ADMIN:
        return True
    if not machines:
        return False
    if p.role == MANAGER:
        return all(m.site_id in p.site_ids for m in machines)
    if p.role == TRAINER:
        if p.member_id is None:
            return False
        from server.services.trainings import trainer_machine_ids  # trainings imports access

        mine = trainer_machine_ids(db, p.member_id)
        return all(m.id in mine for m in machines)
    return False


def can_change_authorization(db: Session, p: Principal, auth: Authorization) -> bool:
    if auth.machine is not None:
        return can_change_trainings(db, p, [auth.machine])
    if auth.group is not None:
        return can_change_trainings(db, p, list(auth.group.machines))
    return p.role == ADMIN


# ---------------------------------------------------------------- lists (SQL)


def managed_site_ids(p: Principal) -> frozenset[int] | None:
    """The sites whose records this principal edits, for filtering lists in SQL: None means every
    site (admin); a manager also edits shared (site-less) members. Same rule as
    `can_manage_site`."""
    if p.role == ADMIN:
        return None
    return p.site_ids if p.role == MANAGER else frozenset()


def read_sites(p: Principal) -> frozenset[int] | None:
    """The sites whose sessions, refusals, audit entries, nodes and machines this principal reads
    (None: all). Same rule as `can_read_site`."""
    return p.site_ids if p.role == MANAGER else None


def contact_sites(p: Principal) -> frozenset[int] | None:
    """The sites whose members' contact details this principal reads, for SQL (with
    `member_in_sites`: shared members too); None: every member. Same rule as
    `can_read_contact`."""
    return p.site_ids if p.role == MANAGER else None


def member_in_sites(site_ids: Collection[int]) -> ColumnElement[bool]:
    """Members of these sites, or shared (without a site)."""
    return or_(Member.site_id.is_(None), Member.site_id.in_(sorted(site_ids)))


def machine_ids_in_sites(site_ids: Collection[int]) -> Select[Any]:
    """Machines of these sites."""
    return select(Machine.id).where(Machine.site_id.in_(sorted(site_ids)))


def machine_record_filters(stmt: Select[Any], *, machine_col: Any, member_col: Any, time_col: Any,
                           site_ids: Collection[int] | None, member_id: int | None,
                           machine_id: int | None, since: datetime | None,
                           until: datetime | None) -> Select[Any]:
    """The filters every list of per-machine records shares (refusals, charges): scoped to
    the machines of `site_ids` (None: every site), by member, by machine, and `time_col` in
    [since, until). One place, so that the lists cannot drift apart on the scope rule."""
    if site_ids is not None:
        stmt = stmt.where(machine_col.in_(machine_ids_in_sites(site_ids)))
    if member_id is not None:
        stmt = stmt.where(member_col == member_id)
    if machine_id is not None:
        stmt = stmt.where(machine_col == machine_id)
    if since is not None:
        stmt = stmt.where(time_col >= since)
    if until is not None:
        stmt = stmt.where(time_col < until)
    return stmt


def group_ids_in_sites(site_ids: Collection[int]) -> Select[Any]:
    """Machine groups with at least one machine, all of them on these sites."""
    outside = (select(machine_group_members.c.group_id)
               .join(Machine, Machine.id == machine_group_members.c.machine_id)
               .where(Machine.site_id.not_in(sorted(site_ids))))
    return (select(machine_group_members.c.group_id)
            .where(machine_group_members.c.group_id.not_in(outside)))


def authorization_in_sites(site_ids: Collection[int]) -> ColumnElement[bool]:
    """Authorizations on machines (or whole groups) of these sites: the ones a manager of these
    sites may revoke, whatever the member's home site."""
    return or_(Authorization.machine_id.in_(machine_ids_in_sites(site_ids)),
               Authorization.group_id.in_(group_ids_in_sites(site_ids)))


def _ids_as_text(stmt: Select[Any]) -> Select[Any]:
    """`AuditLog.entity_id` is text: the ids of `stmt`, cast."""
    return select(cast(stmt.subquery().c[0], String))


def audit_in_sites(site_ids: Collection[int] | None) -> ColumnElement[bool]:
    """Audit entries about records of these sites: the sites themselves, their members (homed
    there or shared) and those members' badges, machines, nodes, groups, authorizations on
    machines there and sign-offs at their nodes. Entries about logins, tokens, settings and
    privacy jobs are for admins. None: every entry."""
    if site_ids is None:
        return true()
    if not site_ids:
        return false()
    sites = sorted(site_ids)
    members = select(Member.id).where(member_in_sites(sites))
    by_type: dict[str, Any] = {
        "site": [str(s) for s in sites],
        "member": _ids_as_text(members),
        "badge": select(Badge.uid).where(Badge.member_id.in_(members)),
        "machine": _ids_as_text(machine_ids_in_sites(sites)),
        "node": _ids_as_text(select(Node.id).where(Node.site_id.in_(sites))),
        "group": _ids_as_text(group_ids_in_sites(sites)),
        "authorization": _ids_as_text(
            select(Authorization.id).where(authorization_in_sites(sites))),
        "signoff": select(TrainingSignoff.event_id).where(
            TrainingSignoff.machine_id.in_(machine_ids_in_sites(sites))),
    }
    return or_(*(and_(AuditLog.entity_type == kind, AuditLog.entity_id.in_(ids))
                 for kind, ids in by_type.items()))
