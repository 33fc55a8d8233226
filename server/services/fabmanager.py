"""The Fab-manager connector (issue 18): settings, and one sync run, no Flask.

A run reads users, trainings, user_trainings, machines and reservations (machine ones), then
diffs them against what fabpass holds, in ONE transaction:

- users -> members matched by e-mail (created with their full name, or updated; never
  deleted: a user gone upstream is reported and kept);
- user_trainings of mapped trainings -> authorizations (`granted_via="fabmanager"`, audited
  by actor `fabmanager`), revoked when the user_training disappears. Authorizations made by
  hand are never touched: only rows this connector granted are revoked;
- reservations of mapped machines -> bookings (`source="fabmanager"`, `external_id`
  `"<reservation id>/<slot start>"`); a cancelled slot, or one that vanished, cancels it.

Anything wrong upstream (`FabmanagerError`) or in the mapping stops the run before anything is
kept: the transaction is rolled back and a failed run is recorded with its message. A dry run
does all of it, lists the changes, and rolls back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.errors import N_, Invalid, ServerError
from server.models import (
    Authorization,
    AuthRole,
    Booking,
    FabmanagerConfig,
    FabmanagerLink,
    FabmanagerRun,
    Member,
)
from server.services.audit import audit
from server.services.bookings import cancel_booking, create_booking, find_external
from server.services.common import get_group_by_slug, get_machine_by_slug, get_site_by_slug, now_utc
from server.services.fabmanager_api import FabmanagerClient, FabmanagerError, FmReservation
from server.services.members import create_member, update_member
from server.services.trainings import grant, revoke, valid_authorization_clause

log = logging.getLogger(__name__)

SOURCE = "fabmanager"
ACTOR = "fabmanager"
ClientFactory = Callable[[FabmanagerConfig], FabmanagerClient]


# ---------------------------------------------------------------- settings


def get_config(db: Session) -> FabmanagerConfig | None:
    return db.get(FabmanagerConfig, 1)


def config_json(cfg: FabmanagerConfig | None) -> dict[str, Any]:
    """The settings as shown back: everything but the token."""
    if cfg is None:
        return {"configured": False, "url": None, "site": None, "trainings": {}, "machines": {}}
    return {"configured": True, "url": cfg.url, "site": cfg.site, "trainings": cfg.trainings,
            "machines": cfg.machines, "updated_at": cfg.updated_at.isoformat()}


def _id_key(key: Any, where: str) -> str:
    if not isinstance(key, str) or not key.isdigit():
        raise Invalid(N_("%(field)s keys must be Fab-manager ids"), {where: N_("numeric ids")},
                      {"field": where})
    return str(int(key))


def _slug(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid(N_("%(field)s must name a slug"), {where: N_("a slug")}, {"field": where})
    return value


def save_config(db: Session, body: dict[str, Any], *, actor: str) -> FabmanagerConfig:
    """Validate and store the settings (every slug must exist now)."""
    url = body.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 500:
        raise Invalid(N_("url must be an http(s) address"), {"url": N_("an http(s) URL")})
    token = body.get("token")
    if not isinstance(token, str) or not 0 < len(token) <= 500:
        raise Invalid(N_("token must be the Fab-manager API key"), {"token": N_("required")})
    site = body.get("site")
    if site is not None:
        get_site_by_slug(db, _slug(site, "site"), "site")
    trainings_in = body.get("trainings", {})
    if not isinstance(trainings_in, dict):
        raise Invalid(N_("trainings must be an object"), {"trainings": N_("an object")})
    trainings: dict[str, Any] = {}
    for key, target in trainings_in.items():
        where = f"trainings.{key}"
        if not isinstance(target, dict) or len(target) != 1 or \
                next(iter(target)) not in ("machine", "group"):
            raise Invalid(N_("%(field)s must be {\"machine\": slug} or {\"group\": slug}"),
                          {where: N_("machine or group")}, {"field": where})
        kind, slug = next(iter(target.items()))
        (get_machine_by_slug if kind == "machine" else get_group_by_slug)(db, _slug(slug, where))
        trainings[_id_key(key, "trainings")] = {kind: slug}
    machines_in = body.get("machines", {})
    if not isinstance(machines_in, dict):
        raise Invalid(N_("machines must be an object"), {"machines": N_("an object")})
    machines: dict[str, str] = {}
    for key, slug in machines_in.items():
        get_machine_by_slug(db, _slug(slug, f"machines.{key}"))
        machines[_id_key(key, "machines")] = slug
    cfg = get_config(db)
    if cfg is None:
        cfg = FabmanagerConfig(id=1)
        db.add(cfg)
    cfg.url, cfg.token, cfg.site = url.rstrip("/"), token, site
    cfg.trainings, cfg.machines, cfg.updated_at = trainings, machines, now_utc()
    audit(db, actor, "fabmanager.configure", "integration", "fabmanager",
          {"url": cfg.url, "site": site, "trainings": trainings, "machines": machines})
    db.flush()
    return cfg


def mapping_lines(mapping: dict[str, Any]) -> str:
    """The mapping as the web editor shows it: one `<id> = <target>` a line."""
    out = []
    for key in sorted(mapping, key=int):
        target = mapping[key]
        if isinstance(target, dict):
            kind, slug = next(iter(target.items()))
            out.append(f"{key} = {kind}:{slug}")
        else:
            out.append(f"{key} = {target}")
    return "\n".join(out)


def parse_mapping_lines(text: str, where: str, *, targets: bool) -> dict[str, Any]:
    """The web editor's lines back to a mapping (`targets`: `machine:slug` or `group:slug`)."""
    out: dict[str, Any] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = (p.strip() for p in line.partition("="))
        if not sep or not key.isdigit() or not value:
            raise Invalid(N_("line %(n)s: write <Fab-manager id> = <target>"),
                          {where: N_("one <id> = <target> a line")}, {"n": n})
        if targets:
            kind, colon, slug = value.partition(":")
            if not colon or kind not in ("machine", "group") or not slug:
                raise Invalid(N_("line %(n)s: the target is machine:<slug> or group:<slug>"),
                              {where: N_("machine:<slug> or group:<slug>")}, {"n": n})
            out[key] = {kind: slug}
        else:
            out[key] = value
    return out


def run_json(run: FabmanagerRun) -> dict[str, Any]:
    return {"id": run.id, "started_at": run.started_at.isoformat(), "ok": run.ok,
            "dry_run": run.dry_run, "message": run.message, "counts": run.counts,
            "problems": run.problems}


def last_runs(db: Session, limit: int = 10) -> list[FabmanagerRun]:
    return list(db.scalars(select(FabmanagerRun).order_by(FabmanagerRun.id.desc()).limit(limit)))


# ---------------------------------------------------------------- one run


@dataclass
class SyncResult:
    ok: bool
    dry_run: bool
    message: str | None = None
    changes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)

    def count(self, key: str, text: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1
        self.changes.append(text)

    def problem(self, kind: str, **details: Any) -> None:
        entry = {"kind": kind, **details}
        if entry not in self.problems:
            self.problems.append(entry)


def default_client(cfg: FabmanagerConfig) -> FabmanagerClient:
    return FabmanagerClient(cfg.url, cfg.token)


def run_sync(db: Session, *, dry_run: bool = False, client_factory: ClientFactory = default_client,
             now: datetime | None = None) -> SyncResult:
    """One run; commits its changes (or none) and the run record. Never raises for a bad
    upstream or mapping: the result says what stopped it."""
    now = now or now_utc()
    result = SyncResult(ok=False, dry_run=dry_run)
    cfg = get_config(db)
    try:
        if cfg is None:
            raise FabmanagerError("the connector is not configured "
                                  "(PUT /api/v1/integrations/fabmanager)")
        client = client_factory(cfg)
        # No transaction (and so no SQLite write lock) is held while Fab-manager answers.
        db.rollback()
        users, user_trainings = client.users(), client.user_trainings()
        trainings, machines = client.trainings(), client.machines()
        reservations = client.reservations()
        cfg = get_config(db)
        if cfg is None:
            raise FabmanagerError("the connector settings were removed during the run")
        members = _sync_members(db, cfg, users, result, now)
        _sync_authorizations(db, cfg, members, user_trainings,
                             {t.id: t.name for t in trainings}, result)
        _sync_bookings(db, cfg, members, reservations, {m.id: m.name for m in machines},
                       result, now)
        result.ok = True
    except FabmanagerError as exc:
        result.message = exc.message
    except ServerError as exc:  # a mapping that names a machine deleted since, ...
        result.message = f"{exc.message}"
    if not result.ok or dry_run:
        db.rollback()
        if not result.ok:
            result.changes, result.counts = [], {}
            log.warning("Fab-manager sync stopped, nothing applied: %s", result.message)
    db.add(FabmanagerRun(started_at=now, finished_at=now_utc(), dry_run=dry_run, ok=result.ok,
                         message=result.message, counts=result.counts, problems=result.problems))
    db.commit()
    return result


def _sync_members(db: Session, cfg: FabmanagerConfig, users: list[Any], result: SyncResult,
                  now: datetime) -> dict[int, int]:
    """Fab-manager user id -> member id, creating or updating members."""
    links = {link.fm_user_id: link for link in db.scalars(select(FabmanagerLink))}
    out: dict[int, int] = {}
    seen: set[int] = set()
    for user in users:
        seen.add(user.id)
        link = links.get(user.id)
        if link is None:
            member = db.scalar(select(Member).where(
                func.lower(Member.email) == user.email.lower()).order_by(Member.id))
            if member is None:
                member = create_member(db, user.full_name, user.email, site=cfg.site, actor=ACTOR)
                result.count("members_created", f"create member {user.email} ({user.full_name})")
            elif member.erased_at is not None:
                result.problem("member_erased", email=user.email)
                continue
            elif member.name != user.full_name:
                update_member(db, member.id, name=user.full_name, actor=ACTOR)
                result.count("members_updated", f"rename member {user.email}: {user.full_name}")
            link = FabmanagerLink(fm_user_id=user.id, member_id=member.id,
                                  name=user.full_name, email=user.email)
            db.add(link)
            out[user.id] = member.id
            continue
        member = db.get(Member, link.member_id)
        if member is None or member.erased_at is not None:
            result.problem("member_erased", email=user.email)
            continue
        out[user.id] = member.id
        link.vanished_at = None
        upstream = {"name": user.full_name, "email": user.email}
        synced = {"name": link.name, "email": link.email}
        local = {"name": member.name, "email": member.email or ""}
        if upstream == synced or upstream == local:
            link.name, link.email = user.full_name, user.email
            continue
        if local != synced:
            result.problem("edited_both_sides", member=member.id, email=user.email)
            continue
        changes = {k: v for k, v in upstream.items() if local[k] != v}
        update_member(db, member.id, actor=ACTOR, **changes)
        link.name, link.email = user.full_name, user.email
        result.count("members_updated", f"update member {user.email}: {', '.join(changes)}")
    for fm_id, link in links.items():
        if fm_id not in seen:
            result.problem("vanished_upstream", member=link.member_id, email=link.email)
            if link.vanished_at is None:
                link.vanished_at = now
    db.flush()
    return out


def _target(db: Session, mapping: dict[str, Any]) -> tuple[str, int]:
    kind, slug = next(iter(mapping.items()))
    if kind == "machine":
        return "machine", get_machine_by_slug(db, slug).id
    return "group", get_group_by_slug(db, slug).id


def _sync_authorizations(db: Session, cfg: FabmanagerConfig, members: dict[int, int],
                         user_trainings: list[Any], training_names: dict[int, str],
                         result: SyncResult) -> None:
    targets = {int(k): _target(db, v) for k, v in cfg.trainings.items()}
    wanted: set[tuple[int, str, int]] = set()
    for ut in user_trainings:
        if ut.training_id not in targets:
            result.problem("unmapped_training", id=ut.training_id,
                           name=training_names.get(ut.training_id, ""))
            continue
        member_id = members.get(ut.user_id)
        if member_id is None:
            continue  # a user not synced (erased here): already reported
        kind, target_id = targets[ut.training_id]
        wanted.add((member_id, kind, target_id))
    ours: dict[tuple[int, str, int], Authorization] = {}
    hand: set[tuple[int, str, int]] = set()
    now = now_utc()
    for auth in db.scalars(select(Authorization).where(
            valid_authorization_clause(now), Authorization.role == AuthRole.user)):
        key = (auth.member_id, "machine" if auth.machine_id is not None else "group",
               auth.machine_id if auth.machine_id is not None else auth.group_id or 0)
        (ours.__setitem__(key, auth) if auth.granted_via == SOURCE else hand.add(key))
    for key in sorted(wanted - set(ours) - hand):
        member_id, kind, target_id = key
        grant(db, member_id, machine_id=target_id if kind == "machine" else None,
              group_id=target_id if kind == "group" else None, via=SOURCE, actor=ACTOR)
        result.count("authorizations_granted", f"grant member {member_id} {kind} {target_id}")
    for key in sorted(set(ours) - wanted):
        revoke(db, ours[key].id, reason="withdrawn in Fab-manager", actor=ACTOR)
        result.count("authorizations_revoked",
                     f"revoke member {key[0]} {key[1]} {key[2]} (authorization {ours[key].id})")


def _sync_bookings(db: Session, cfg: FabmanagerConfig, members: dict[int, int],
                   reservations: list[FmReservation], machine_names: dict[int, str],
                   result: SyncResult, now: datetime) -> None:
    machines = {int(k): get_machine_by_slug(db, v).id for k, v in cfg.machines.items()}
    seen: set[str] = set()
    for res in reservations:
        if res.reservable_type != "Machine":
            continue
        machine_id = machines.get(res.reservable_id)
        if machine_id is None:
            result.problem("unmapped_machine", id=res.reservable_id,
                           name=machine_names.get(res.reservable_id, ""))
            continue
        member_id = members.get(res.user_id)
        if member_id is None:
            continue
        for slot in res.slots:
            ext = f"{res.id}/{slot.start.isoformat()}"
            seen.add(ext)
            booking = find_external(db, SOURCE, ext)
            if slot.canceled:
                if booking is not None and booking.cancelled_at is None:
                    cancel_booking(db, booking.id, actor=ACTOR, now=now)
                    result.count("bookings_cancelled", f"cancel booking {booking.id} ({ext})")
            elif booking is None and slot.end > now:
                try:
                    made = create_booking(db, machine_id=machine_id, member_id=member_id,
                                          start=slot.start, end=slot.end, actor=ACTOR,
                                          source=SOURCE, external_id=ext, now=now)
                except ServerError as exc:  # overlap with a fabpass booking, untrained, ...
                    result.problem("booking_refused", reservation=res.id, reason=exc.message)
                    continue
                result.count("bookings_created", f"book machine {machine_id} for member "
                             f"{member_id} {slot.start.isoformat()} ({ext})")
                del made
    gone = db.scalars(select(Booking).where(Booking.source == SOURCE,
                                            Booking.cancelled_at.is_(None), Booking.end > now))
    for booking in list(gone):
        if booking.external_id not in seen:
            cancel_booking(db, booking.id, actor=ACTOR, now=now)
            result.count("bookings_cancelled",
                         f"cancel booking {booking.id} ({booking.external_id}): gone upstream")
