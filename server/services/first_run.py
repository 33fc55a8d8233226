"""The first-run guide (issue 15): what a new installation still lacks, in the order a volunteer
sets a lab up (site, machines, members, trainings, a node), so the dashboard can show the next
steps and drop each one once it is done.

No Flask here: the page decides what to say and where to link; this module only answers "is
this step done" for what the principal can see (the one scope rule, services/access.py), so a
manager of a new site is guided for that site even when other sites are long set up.
"""

from __future__ import annotations

from collections.abc import Collection
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


def first_run_steps(db: Session, p: access.Principal,
                    known_done: Collection[str] = ()) -> list[Step]:
    """Every step with whether it is done, for what `p` reads; empty for roles that set nothing
    up (trainers, members): the guide is for admins and managers.

    One statement for all the steps (each an EXISTS column), not one per step: this runs on
    every dashboard render. `known_done`: steps the caller saw done a moment ago (the page keeps
    them a few seconds), taken as done without asking again; when every step is known done no
    statement runs at all."""
    if not (p.is_admin or p.is_manager):
        return []
    todo = [code for code in STEPS if code not in known_done]
    done = dict.fromkeys(STEPS, True)
    if todo:
        queries = _step_queries(access.read_sites(p))
        row = db.execute(select(*(queries[code].exists().label(code) for code in todo))).one()
        done.update((code, bool(getattr(row, code))) for code in todo)
    return [Step(code, done[code]) for code in STEPS]


def _step_queries(sites: frozenset[int] | None) -> dict[str, Select[Any]]:
    """For each step, the rows that show it done, within `sites` (None: every site)."""
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
    return {"site": site_q, "machine": machine_q, "member": member_q, "training": training_q,
            "node": node_q}


def guide(db: Session, p: access.Principal, known_done: Collection[str] = ()) -> list[Step]:
    """The steps to show: all of them while one is left to do, none once everything is done."""
    return shown(first_run_steps(db, p, known_done))


def shown(steps: list[Step]) -> list[Step]:
    """The rule of the guide on steps already known (`guide` asks for them itself)."""
    return steps if any(not s.done for s in steps) else []
