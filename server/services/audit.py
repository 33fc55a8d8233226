"""The audit log: one row per change, written in the same transaction as the change."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import (
    AuditLog,
)
from server.services.access import audit_in_sites
from server.services.common import DEFAULT_PER_PAGE, Page, paginate


def audit(db: Session, actor: str, action: str, entity_type: str, entity_id: Any,
          details: dict[str, Any] | None = None) -> AuditLog:
    row = AuditLog(actor=actor[:200], action=action, entity_type=entity_type,
                   entity_id=None if entity_id is None else str(entity_id),
                   details=_jsonable(details or {}))
    db.add(row)
    return row


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def list_audit(db: Session, entity_type: str | None = None, entity_id: str | None = None,
               page: int | None = 1, per_page: int | None = DEFAULT_PER_PAGE, *,
               action: str | None = None, actor_user_id: int | None = None,
               site_ids: Collection[int] | None = None) -> Page[AuditLog]:
    """Audit entries, newest first; `action` is a prefix ("member." ...); `site_ids`: only the
    entries about records of these sites (`server.services.access.audit_in_sites`)."""
    stmt = select(AuditLog).order_by(AuditLog.at.desc(), AuditLog.id.desc())
    if site_ids is not None:
        stmt = stmt.where(audit_in_sites(site_ids))
    if action:
        stmt = stmt.where(AuditLog.action.like(f"{action}%"))
    if actor_user_id is not None:  # "user:5" or "user:5 (token x)"
        stmt = stmt.where(AuditLog.actor.like(f"user:{actor_user_id} %")
                          | (AuditLog.actor == f"user:{actor_user_id}"))
    if entity_type:
        stmt = stmt.where(AuditLog.entity_type == entity_type)
    if entity_id is not None:
        stmt = stmt.where(AuditLog.entity_id == str(entity_id))
    return paginate(db, stmt, page, per_page)
