"""Maintenance by machine hours: tasks due every N *active* hours (busy time, not badge time).

A laser tube wears while it fires, not while a member reads the manual with the relay on, so
intervals count `active_s` of closed sessions. The machine's total at each intervention is
stored in the log (`active_hours_at`) so "hours since" is one subtraction.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.errors import N_, NotFound, ServerError
from server.models import Machine, MaintenanceLog, MaintenanceTask, UsageSession, utcnow
from server.services.audit import audit
from server.services.machines import set_machine_lock

log = logging.getLogger(__name__)

DUE_SOON_FRACTION = 0.1  # "due" once less than 10 % of the interval is left
MAINTENANCE_LOCK_PREFIX = "maintenance: "


class MaintenanceError(ServerError, ValueError):
    """A maintenance request names an unknown machine or task, or a bad interval."""

    code = "invalid"


def active_hours(db: Session, machine_id: int | None = None,
                 until: datetime | None = None) -> dict[int, float]:
    """Total active hours of closed sessions per machine (all machines, or one)."""
    s = UsageSession.__table__
    q = (sa.select(s.c.machine_id, sa.func.coalesce(sa.func.sum(s.c.active_s), 0.0) / 3600.0)
         .where(s.c.ended_at.is_not(None), s.c.machine_id.is_not(None))
         .group_by(s.c.machine_id))
    if machine_id is not None:
        q = q.where(s.c.machine_id == machine_id)
    if until is not None:
        q = q.where(s.c.ended_at <= until)
    return {int(mid): float(h or 0.0) for mid, h in db.execute(q).all()}


def machine_active_hours(db: Session, machine_id: int, until: datetime | None = None) -> float:
    return active_hours(db, machine_id, until).get(machine_id, 0.0)


def _state(remaining: float, interval: float) -> str:
    if remaining <= 0:
        return "overdue"
    if remaining <= interval * DUE_SOON_FRACTION:
        return "due"
    return "ok"


def _status_rows(db: Session, tasks: list[MaintenanceTask],
                 totals: dict[int, float]) -> list[dict[str, Any]]:
    if not tasks:
        return []
    ids = [t.id for t in tasks]
    last_id = (sa.select(sa.func.max(MaintenanceLog.id)).where(MaintenanceLog.task_id.in_(ids))
               .group_by(MaintenanceLog.task_id))
    last = {lg.task_id: lg for lg in db.scalars(
        sa.select(MaintenanceLog).where(MaintenanceLog.id.in_(last_id)))}
    out = []
    for t in tasks:
        total = totals.get(t.machine_id, 0.0)
        lg = last.get(t.id)
        base = (lg.active_hours_at or 0.0) if lg is not None else 0.0
        since = max(total - base, 0.0)
        remaining = t.interval_active_h - since
        out.append({
            "task_id": t.id, "machine_id": t.machine_id, "name": t.name,
            "interval_h": t.interval_active_h, "hours_since": round(since, 2),
            "remaining_h": round(remaining, 2), "state": _state(remaining, t.interval_active_h),
            "last_done_at": lg.done_at if lg is not None else None,
            "last_note": lg.note if lg is not None else None,
        })
    return out


def maintenance_status(db: Session, machine_id: int) -> dict[str, Any]:
    """The machine's total active hours, hours since its last intervention, and every task with
    `hours_since`, `remaining_h` and `state` (``ok``, ``due`` = under 10 % left, ``overdue``)."""
    machine = db.get(Machine, machine_id)
    if machine is None:
        raise MaintenanceError(N_("no machine %(id)s"), {"id": machine_id})
    total = machine_active_hours(db, machine_id)
    tasks = list(db.scalars(sa.select(MaintenanceTask).where(
        MaintenanceTask.machine_id == machine_id, MaintenanceTask.active.is_(True))
        .order_by(MaintenanceTask.name)))
    last = db.scalars(sa.select(MaintenanceLog).where(MaintenanceLog.machine_id == machine_id)
                      .order_by(MaintenanceLog.done_at.desc(), MaintenanceLog.id.desc())
                      .limit(1)).first()
    since_last = None
    if last is not None:
        since_last = round(max(total - (last.active_hours_at or 0.0), 0.0), 2)
    return {"machine_id": machine_id, "active_hours": round(total, 2),
            "hours_since_maintenance": since_last,
            "last_maintenance_at": last.done_at if last is not None else None,
            "locked": machine.locked, "lock_reason": machine.lock_reason,
            "tasks": _status_rows(db, tasks, {machine_id: total})}


def due_maintenance(db: Session) -> dict[int, list[dict[str, Any]]]:
    """Tasks that are due or overdue, per machine id (for the dashboard); two queries in all."""
    tasks = list(db.scalars(sa.select(MaintenanceTask).where(MaintenanceTask.active.is_(True))))
    rows = _status_rows(db, tasks, active_hours(db))
    out: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        if r["state"] != "ok":
            out.setdefault(r["machine_id"], []).append(r)
    for v in out.values():
        v.sort(key=lambda r: r["remaining_h"])
    return out


def create_task(db: Session, machine_id: int, name: str, interval_active_h: float, *,
                actor: str = "system") -> MaintenanceTask:
    if db.get(Machine, machine_id) is None:
        raise MaintenanceError(N_("no machine %(id)s"), {"id": machine_id})
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise MaintenanceError(N_("name: 1 to 200 characters"))
    try:
        interval = float(interval_active_h)
    except (TypeError, ValueError) as exc:
        raise MaintenanceError(N_("interval: a number of active hours")) from exc
    if not 0 < interval <= 1_000_000:
        raise MaintenanceError(N_("interval: a positive number of active hours"))
    task = MaintenanceTask(machine_id=machine_id, name=name, interval_active_h=interval)
    db.add(task)
    db.flush()
    audit(db, actor, "maintenance.task_create", "machine", machine_id,
          {"task_id": task.id, "name": name, "interval_active_h": interval})
    return task


def retire_task(db: Session, machine_id: int, task_id: int, *, actor: str) -> MaintenanceTask:
    """Stop tracking a task (its history is kept); audited like every change."""
    task = db.get(MaintenanceTask, task_id)
    if task is None or task.machine_id != machine_id:
        raise NotFound(N_("no task %(task)s on machine %(machine)s"),
                       {"task": task_id, "machine": machine_id})
    if task.active:
        task.active = False
        audit(db, actor, "maintenance.task_retire", "machine", machine_id,
              {"task_id": task.id, "name": task.name})
        db.flush()
    return task


def tasks_fingerprint(db: Session) -> tuple[Any, ...] | None:
    """Changes whenever an active task or an intervention is added or retired (None: no task),
    so a cached `due_maintenance` knows when to recompute."""
    count, max_task, sum_task = db.execute(
        sa.select(sa.func.count(), sa.func.max(MaintenanceTask.id), sa.func.sum(MaintenanceTask.id))
        .where(MaintenanceTask.active.is_(True))).one()
    if not count:
        return None
    return (count, max_task, sum_task, db.scalar(sa.select(sa.func.max(MaintenanceLog.id))))


def get_task(db: Session, machine_id: int, task_id: int) -> MaintenanceTask:
    task = db.get(MaintenanceTask, task_id)
    if task is None or task.machine_id != machine_id:
        raise NotFound(N_("no task %(task)s on machine %(machine)s"),
                       {"task": task_id, "machine": machine_id})
    return task


def _set_lock(db: Session, machine: Machine, locked: bool, reason: str | None, actor: str) -> None:
    set_machine_lock(db, machine.id, locked, reason, actor=actor)


def lock_until_done(db: Session, machine_id: int, task_id: int | None, *, actor: str) -> Machine:
    """Lock the machine (nodes refuse new sessions) until an intervention is logged."""
    machine = db.get(Machine, machine_id)
    if machine is None:
        raise MaintenanceError(N_("no machine %(id)s"), {"id": machine_id})
    task = db.get(MaintenanceTask, task_id) if task_id is not None else None
    reason = MAINTENANCE_LOCK_PREFIX + (task.name if task is not None else "in progress")
    _set_lock(db, machine, True, reason, actor)
    return machine


def log_intervention(db: Session, machine_id: int, task_id: int | None, *,
                     user_id: int | None, note: str | None = None,
                     done_at: datetime | None = None, lock: bool = False,
                     actor: str = "web") -> MaintenanceLog:
    """Record an intervention (who, when, note, the machine's active hours then).

    ``lock=True`` locks the machine until a later intervention is logged (e.g. a part is on
    order); logging without `lock` unlocks a machine locked for maintenance, never one locked
    for another reason."""
    machine = db.get(Machine, machine_id)
    if machine is None:
        raise MaintenanceError(N_("no machine %(id)s"), {"id": machine_id})
    if task_id is not None:
        task = db.get(MaintenanceTask, task_id)
        if task is None or task.machine_id != machine_id:
            raise MaintenanceError(N_("no task %(task)s on this machine"), {"task": task_id})
    when = done_at or utcnow()
    entry = MaintenanceLog(machine_id=machine_id, task_id=task_id, done_at=when,
                           done_by_user_id=user_id, note=(note or "").strip() or None,
                           active_hours_at=machine_active_hours(db, machine_id, when))
    db.add(entry)
    db.flush()
    if lock:
        lock_until_done(db, machine_id, task_id, actor=actor)
    elif machine.locked and (machine.lock_reason or "").startswith(MAINTENANCE_LOCK_PREFIX):
        _set_lock(db, machine, False, None, actor)
    log.info("maintenance logged on machine %s (task %s) by user %s", machine_id, task_id,
             user_id)
    return entry


def history(db: Session, machine_id: int, limit: int = 50) -> list[MaintenanceLog]:
    return list(db.scalars(sa.select(MaintenanceLog).where(MaintenanceLog.machine_id == machine_id)
                           .order_by(MaintenanceLog.done_at.desc(), MaintenanceLog.id.desc())
                           .limit(limit)))


__all__ = [
    "MaintenanceError", "active_hours", "create_task", "due_maintenance", "history",
    "lock_until_done", "log_intervention", "machine_active_hours", "maintenance_status",
]
