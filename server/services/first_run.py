"""The first-run guide (issue 15): what a new installation still lacks, in the order a volunteer
sets a lab up (site, machines, members, trainings, a node), so the dashboard can show the next
steps and drop each one once it is done.

No Flask here: the page decides what to say and where to link; this module only answers "is
this step done" for what the principal can see (the one scope rule, services/access.py), so a
manager of a new site is guided for that site even when other sites are long set up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from server.models import Authorization, Machine, Member, Node, Site
from server.services import access

# The steps, in the order they are done: each needs the one before (a machine needs a site, a
# training needs a machine and a member, a node drives a machine).
STEPS = ("site", "machine", "member", "training", "node")


@dataclass(frozen=True)
class Step:
    code: str  # one of STEPS
    done: bool


def first_run_steps(db: Session, p: access.Principal) -> list[Step]:
    """Every step with whether it is done, for what `p` reads; empty for roles that set nothing
    up (trainers, members): the guide is for admins and managers."""
    if not (p.is_admin or p.is_manager):
        return []
    sites = access.read_sites(p)

    def any_row(stmt: Select[Any]) -> bool:
        return bool(db.scalar(select(stmt.exists())))

    site_q = select(Site.id)
    machine_q = select(Machine.id)
    member_q = select(Member.id).where(Member.erased_at.is_(None))
    training_q = select(Authorization.id).where(Authorization.revoked_at.is_(None))
    # provisioned: credentials issued, or the node has already spoken to the server
    node_q = select(Node.id).where(Node.revoked_at.is_(None),
                                   or_(Node.mqtt_username.is_not(None), Node.last_seen.is_not(None)))
    if sites is not None:
        ids = sorted(sites)
        site_q = site_q.where(Site.id.in_(ids))
        machine_q = machine_q.where(Machine.site_id.in_(ids))
        member_q = member_q.where(access.member_in_sites(ids))
        training_q = training_q.where(access.authorization_in_sites(ids))
        node_q = node_q.where(Node.site_id.in_(ids))
    done = {"site": any_row(site_q), "machine": any_row(machine_q), "member": any_row(member_q),
            "training": any_row(training_q), "node": any_row(node_q)}
    return [Step(code, done[code]) for code in STEPS]


def guide(db: Session, p: access.Principal) -> list[Step]:
    """The steps to show: all of them while one is left to do, none once everything is done."""
    steps = first_run_steps(db, p)
    return steps if any(not s.done for s in steps) else []
