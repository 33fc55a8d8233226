"""Sites: the labs of a consortium."""

from __future__ import annotations

import os

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.errors import N_, Conflict
from server.models import (
    Site,
)
from server.services.audit import audit
from server.services.identities import identity_slug
from server.services.validation import text_field, timezone_field


def create_site(db: Session, slug: str, name: str, timezone: str | None = None, *,
                actor: str) -> Site:
    """A new site; without `timezone`, FABPASS_TIMEZONE (contract) or UTC."""
    slug = identity_slug(db, slug, kind="site")
    name_ = text_field(name, "name")
    tz = timezone_field(timezone or os.environ.get("FABPASS_TIMEZONE") or "UTC")
    if db.scalar(select(Site.id).where(Site.slug == slug)) is not None:
        raise Conflict(N_("a site with slug %(slug)r exists"), {"slug": slug})
    site = Site(slug=slug, name=name_, timezone=tz)
    db.add(site)
    db.flush()
    audit(db, actor, "site.create", "site", site.id, {"slug": slug, "name": name_, "timezone": tz})
    db.flush()
    return site


def list_sites(db: Session) -> list[Site]:
    return list(db.scalars(select(Site).order_by(Site.slug)))


def sites_by_name(db: Session) -> list[Site]:
    return list(db.scalars(select(Site).order_by(Site.name, Site.id)))


def site_timezone(db: Session, slug: str) -> str | None:
    """The zone of the site with this slug (None: no such site)."""
    return db.scalar(select(Site.timezone).where(Site.slug == slug))
