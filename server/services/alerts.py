"""Alerts for managers: node offline, node clock unsynced, node outbox growing (issue 20), a
smart plug offline or found on without a session (issue 16).

The rule (`evaluate`) is pure: it takes what the nodes look like, the conditions already open
and the time, and returns what opened and what cleared. `run_alerts` applies it to the
database: an opened condition is stored in `alert_states` and mailed once; it is mailed again
only as one "resolved" when it clears, so a node that stays offline for a day sends one mail,
not one per round. Recipients: the active manager logins of the node's site that have an
e-mail address and have not switched that kind of alert off (`alert_optouts`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.models import (
    AlertOptOut,
    AlertState,
    DeadLetter,
    Machine,
    Node,
    NodePlug,
    User,
    UserRole,
    user_sites,
)
from server.services import energy, mail, mail_templates, webhooks
from server.services.common import replace_kind_rows

log = logging.getLogger(__name__)

KINDS = ("node_offline", "node_clock", "node_backlog", "plug_offline", "plug_unexpected_on",
         "maintenance_due", "maintenance_overdue",
         "dead_letters", "weekly_summary")
NODE_KINDS = ("node_offline", "node_clock", "node_backlog", "plug_offline", "plug_unexpected_on")
DEAD_LETTER_WINDOW = timedelta(hours=1)
BACKLOG_ALERT = 100  # events waiting in a node's outbox


@dataclass(frozen=True)
class NodeView:
    id: int
    slug: str
    site_id: int | None
    online: bool
    last_seen: datetime | None
    clock_ok: bool | None
    backlog: int | None
    plug_online: bool | None = None  # status `actuator_online` (None: a relay, or not said)
    unexpected_at: datetime | None = None  # last `actuator.unexpected_on`


@dataclass(frozen=True)
class Transition:
    key: str        # "<kind>:<id>"
    kind: str
    site_id: int | None  # None: the admins get it
    values: dict[str, Any]  # for the mail's title and body
    opened: bool    # False: resolved


def _node_values(node: NodeView) -> dict[str, Any]:
    return {"node": node.slug, "backlog": node.backlog or 0,
            "since": node.last_seen.strftime("%Y-%m-%d %H:%M") if node.last_seen else "?",
            "at": node.unexpected_at.strftime("%Y-%m-%d %H:%M") if node.unexpected_at else "?"}


def _conditions(node: NodeView, now: datetime, offline_after: timedelta) -> dict[str, bool]:
    offline = (not node.online and node.last_seen is not None
               and now - node.last_seen >= offline_after)
    return {
        "node_offline": offline,
        "node_clock": node.online and node.clock_ok is False,
        "node_backlog": node.online and (node.backlog or 0) >= BACKLOG_ALERT,
        "plug_offline": node.online and node.plug_online is False,
        "plug_unexpected_on": (node.unexpected_at is not None
                               and energy.unexpected_recent(node.unexpected_at, now)),
    }


def evaluate(nodes: Iterable[NodeView], open_keys: set[str], now: datetime,
             offline_after: timedelta) -> list[Transition]:
    """What opened and what cleared since the conditions in `open_keys` were recorded."""
    out: list[Transition] = []
    for node in nodes:
        for kind, active in _conditions(node, now, offline_after).items():
            key = f"{kind}:{node.id}"
            if active and key not in open_keys:
                out.append(Transition(key, kind, node.site_id, _node_values(node), opened=True))
            elif not active and key in open_keys:
                out.append(Transition(key, kind, node.site_id, _node_values(node), opened=False))
    return out


def evaluate_others(active: dict[str, tuple[str, int | None, dict[str, Any]]],
                    open_states: dict[str, tuple[str, int | None, dict[str, Any]]]
                    ) -> list[Transition]:
    """The same rule for conditions that are not about one node (maintenance, dead letters):
    `active` maps a key to (kind, site, values) now; `open_states` what was open before."""
    out = [Transition(k, kind, site, values, opened=True)
           for k, (kind, site, values) in active.items() if k not in open_states]
    out += [Transition(k, kind, site, values, opened=False)
            for k, (kind, site, values) in open_states.items() if k not in active]
    return out


def _other_conditions(db: Session, now: datetime) -> dict[str, tuple[str, int | None,
                                                                   dict[str, Any]]]:
    from server.services.maintenance import due_maintenance

    active: dict[str, tuple[str, int | None, dict[str, Any]]] = {}
    machines = db.execute(select(Machine.id, Machine.site_id, Machine.name)).all()
    sites = {r.id: r.site_id for r in machines}
    names = {r.id: r.name for r in machines}
    for machine_id, rows in due_maintenance(db).items():
        for r in rows:
            kind = "maintenance_overdue" if r["state"] == "overdue" else "maintenance_due"
            active[f"{kind}:{r['task_id']}"] = (kind, sites.get(machine_id), {
                "machine": names.get(machine_id, "?"), "task": r.get("name", "?")})
    recent = db.scalar(select(func.count()).select_from(DeadLetter).where(
        DeadLetter.received_at > now - DEAD_LETTER_WINDOW)) or 0
    if recent:
        active["dead_letters:all"] = ("dead_letters", None, {"count": recent})
    return active


def _views(db: Session) -> list[NodeView]:
    rows = db.execute(select(Node.id, Node.slug, Node.site_id, Node.online, Node.last_seen,
                             Node.clock_ok, Node.last_status, NodePlug.online.label("plug"),
                             NodePlug.unexpected_at)
                      .outerjoin(NodePlug, NodePlug.node_id == Node.id)
                      .where(Node.revoked_at.is_(None))).all()
    views = []
    for r in rows:
        backlog = r.last_status.get("backlog") if isinstance(r.last_status, dict) else None
        views.append(NodeView(r.id, r.slug, r.site_id, bool(r.online), r.last_seen, r.clock_ok,
                              backlog if isinstance(backlog, int) else None,
                              r.plug, r.unexpected_at))
    return views


def recipients(db: Session, site_id: int | None, kind: str) -> list[tuple[str, str | None]]:
    """(e-mail, locale) of the managers of `site_id` who want `kind` (site None: the admins,
    e.g. for dead letters, which belong to no site)."""
    opted_out = select(AlertOptOut.user_id).where(AlertOptOut.kind == kind)
    if site_id is None:
        admins = db.execute(select(User.email, User.locale).where(
            User.active.is_(True), User.role == UserRole.admin,
            User.id.not_in(opted_out))).all()
        return [(r.email, r.locale) for r in admins if r.email]
    rows = db.execute(select(User.email, User.locale)
                      .join(user_sites, user_sites.c.user_id == User.id)
                      .where(user_sites.c.site_id == site_id, User.active.is_(True),
                             User.role == UserRole.manager, User.id.not_in(opted_out))).all()
    return [(r.email, r.locale) for r in rows if r.email]


TITLES = {
    ("node_offline", "en"): "node {node} is offline", ("node_offline", "fr"): "le nœud {node} est hors ligne",
    ("node_clock", "en"): "node {node}: clock not synchronised",
    ("node_clock", "fr"): "nœud {node} : horloge non synchronisée",
    ("node_backlog", "en"): "node {node}: {backlog} events waiting",
    ("node_backlog", "fr"): "nœud {node} : {backlog} événements en attente",
    ("plug_offline", "en"): "node {node}: its smart plug is offline",
    ("plug_offline", "fr"): "nœud {node} : sa prise connectée est hors ligne",
    ("plug_unexpected_on", "en"): "node {node}: its smart plug was on without a session",
    ("plug_unexpected_on", "fr"): "nœud {node} : sa prise connectée était allumée sans session",
    ("maintenance_due", "en"): "{machine}: maintenance \"{task}\" is due soon",
    ("maintenance_due", "fr"): "{machine} : entretien « {task} » bientôt dû",
    ("maintenance_overdue", "en"): "{machine}: maintenance \"{task}\" is overdue",
    ("maintenance_overdue", "fr"): "{machine} : entretien « {task} » en retard",
    ("dead_letters", "en"): "{count} messages from nodes were rejected in the last hour",
    ("dead_letters", "fr"): "{count} messages de nœuds refusés depuis une heure",
}
BODIES = {
    ("node_offline", True, "en"): "Offline since {since} (UTC).",
    ("node_offline", True, "fr"): "Hors ligne depuis {since} (UTC).",
    ("node_offline", False, "en"): "The node is back online.",
    ("node_offline", False, "fr"): "Le nœud est de nouveau en ligne.",
    ("plug_offline", True, "en"): "New sessions are refused (actuator_offline) until it is back.",
    ("plug_offline", True, "fr"): "Les nouvelles sessions sont refusées (actuator_offline) "
                                  "jusqu'à son retour.",
    ("plug_unexpected_on", True, "en"): "Pressed by hand or power restored at {at} (UTC); "
                                        "the node switches it off.",
    ("plug_unexpected_on", True, "fr"): "Bouton pressé ou courant rétabli à {at} (UTC) ; "
                                        "le nœud l'éteint.",
}


def _mail(db: Session, t: Transition, public_url: str) -> int:
    sent = 0
    for email, locale in recipients(db, t.site_id, t.kind):
        lang = locale if locale in mail_templates.LANGS else "en"
        values = t.values
        title = TITLES[(t.kind, lang)].format(**values)
        body = BODIES.get((t.kind, t.opened, lang), "").format(**values)
        subject, text, html = mail_templates.render(
            "alert" if t.opened else "alert_resolved", lang, title=title, body=body,
            link=f"{public_url.rstrip('/')}/{'nodes' if t.kind in NODE_KINDS else ''}")
        mail.enqueue(db, email, subject, text, html, kind=t.kind)
        sent += 1
    return sent


def run_alerts(db: Session, now: datetime, *, offline_after_s: float,
               public_url: str) -> list[Transition]:
    """Apply the rules once and queue their mails (commits)."""
    states = list(db.scalars(select(AlertState)))
    open_keys = {st.key for st in states}
    transitions = evaluate(_views(db), open_keys, now, timedelta(seconds=offline_after_s))
    others = {st.key: (st.key.split(":", 1)[0], st.site_id, dict(st.details or {}))
              for st in states if st.key.split(":", 1)[0] not in NODE_KINDS}
    transitions += evaluate_others(_other_conditions(db, now), others)
    for t in transitions:
        if t.opened:
            db.add(AlertState(key=t.key, site_id=t.site_id, opened_at=now, details=t.values))
        else:
            state = db.get(AlertState, t.key)
            if state is not None:
                db.delete(state)
        _mail(db, t, public_url)
        if t.opened and t.kind.startswith("maintenance_"):
            webhooks.emit(db, "maintenance.due", t.site_id, {**t.values, "state": t.kind[12:]})
        log.info("alert %s %s", t.key, "opened" if t.opened else "resolved")
    db.commit()
    return transitions


def optouts(db: Session, user_id: int) -> set[str]:
    """The alert kinds this login switched off."""
    return set(db.scalars(select(AlertOptOut.kind).where(AlertOptOut.user_id == user_id)))


def set_optouts(db: Session, user_id: int, disabled: Iterable[str]) -> None:
    """The kinds this login does not want (every other kind is on); the caller commits."""
    replace_kind_rows(db, AlertOptOut, "user_id", user_id, {k for k in disabled if k in KINDS})

