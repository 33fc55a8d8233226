"""Site scope as SQL filters, so that lists are filtered before they are paginated.

`site_ids` in the list services: None lists every site (an admin); otherwise only the records a
manager of these sites manages.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select

from server.models import (
    Authorization,
    Machine,
    Member,
    machine_group_members,
)


def member_in_sites(site_ids: Collection[int]) -> ColumnElement[bool]:
    """Members of these sites, or shared (without a site)."""
    return or_(Member.site_id.is_(None), Member.site_id.in_(sorted(site_ids)))


def machine_ids_in_sites(site_ids: Collection[int]) -> Select[Any]:
    """Machines of these sites."""
    return select(Machine.id).where(Machine.site_id.in_(sorted(site_ids)))


def group_ids_in_sites(site_ids: Collection[int]) -> Select[Any]:
    """Machine groups with at least one machine, all of them on these sites."""
    outside = (select(machine_group_members.c.group_id)
               .join(Machine, Machine.id == machine_group_members.c.machine_id)
               .where(Machine.site_id.not_in(sorted(site_ids))))
    return (select(machine_group_members.c.group_id)
            .where(machine_group_members.c.group_id.not_in(outside)))


def authorization_in_sites(site_ids: Collection[int]) -> ColumnElement[bool]:
    """Authorizations whose member and machine (or whole group) are managed on these sites."""
    return and_(Authorization.member_id.in_(select(Member.id).where(member_in_sites(site_ids))),
                or_(Authorization.machine_id.in_(machine_ids_in_sites(site_ids)),
                    Authorization.group_id.in_(group_ids_in_sites(site_ids))))
