"""The demo's seed data: two sites, three machines, members with and without trainings,
expired ones, a trainer, maintenance tasks and a week of past usage.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

TIMEZONE = "Europe/Paris"


ADMIN_EMAIL = "admin@example.org"


IDLE_END_S = 60  # printers: the relay stays on until the machine has been idle this long


def N_(text: str) -> str:
    """Marks a string for the panel's catalog (translated when shown, not here)."""
    return text


SITES = [("centre", "Fablab du Centre"), ("nord", "Atelier Nord")]


PRINTER_POLICY = {"mode": "tap", "power_off": "when_idle", "idle_end_s": IDLE_END_S}


@dataclass(frozen=True)
class DemoMachine:
    slug: str  # also the node's slug: one node drives one machine
    name: str
    site: str
    kind: str
    policy: dict[str, Any]
    hourly_rate: float
    plug: str | None = None  # a simulated Shelly plug's device name instead of the relay


MACHINES = [
    DemoMachine("laser-1", "Laser Trotec Speedy 300", "centre", "laser_cutter", {"mode": "tap"}, 12.0),
    DemoMachine("printer-1", "Prusa MK4 · centre", "centre", "3d_printer", PRINTER_POLICY, 2.0),
    DemoMachine("printer-2", "Prusa MK4 · nord", "nord", "3d_printer", PRINTER_POLICY, 2.0),
    # on a smart plug: its power (driven from the panel) is the busy signal and the kWh
    DemoMachine("printer-3", "Prusa MK4 · smart plug", "centre", "3d_printer", PRINTER_POLICY,
                2.0, plug="shellyplug-demo"),
]


PRINTERS_GROUP = ("printers", "All 3D printers")
PLUG_LEASE_S = 30

LANGUAGES = ("fr", "en")
DEFAULT_LANG = "fr"

# What a person reads in the seeded rows, in the demo's language. Stored data is not translated
# when shown (a manager's own task names are not catalog messages), so the seed itself is
# written in the language of the lab it pretends to be: French by default.
TEXTS: dict[str, dict[str, str]] = {
    "fr": {
        "Laser Trotec Speedy 300": "Découpe laser Trotec Speedy 300",
        "Prusa MK4 · centre": "Imprimante Prusa MK4 · Centre",
        "Prusa MK4 · nord": "Imprimante Prusa MK4 · Nord",
        "Prusa MK4 · smart plug": "Imprimante Prusa MK4 · prise connectée",
        "All 3D printers": "Toutes les imprimantes 3D",
        "Clean the lens and mirrors": "Nettoyer la lentille et les miroirs",
        "Check the tube and the water cooling": "Contrôler le tube et le refroidissement à eau",
        "Clean the nozzle and the bed": "Nettoyer la buse et le plateau",
        "Lubricate the axes": "Graisser les axes",
        "demo": "démo",
    },
    "en": {},
}


def text(lang: str, english: str) -> str:
    """The seeded wording of `english` in `lang` (English itself when no translation)."""
    return TEXTS.get(lang, {}).get(english, english)


# Listed with this `until`, so the node itself refuses her with `expired` once it has passed.
CHLOE_LASER_EXPIRY = timedelta(minutes=2)


@dataclass(frozen=True)
class DemoMember:
    name: str
    email: str
    member_no: str
    site: str
    tags: list[str]
    badges: list[tuple[str, str]]  # (uid, status)
    # (machine slug or "group:slug", role, expiry from now: None = never, negative = expired)
    trainings: list[tuple[str, str, timedelta | None]] = field(default_factory=list)
    note: str = ""


MEMBERS = [
    DemoMember("Alice Durand", "alice@example.org", "M-0001", "centre",
               ["age:26-40", "area:centre"], [("04A1B2C3", "active")],
               [("laser-1", "trainer", None), ("group:printers", "trainer", None)],
               N_("trainer on every machine: tap twice to sign a trainee off")),
    DemoMember("Bruno Martin", "bruno@example.org", "M-0002", "centre",
               ["age:18-25", "area:centre"], [("0B5E2D71", "active")],
               [("laser-1", "user", timedelta(days=300)), ("group:printers", "user", None)],
               N_("trained on everything")),
    DemoMember("Chloé Bernard", "chloe@example.org", "M-0003", "nord",
               ["age:41-60", "area:nord"], [("3F9A6C12", "active")],
               [("group:printers", "user", None), ("laser-1", "user", CHLOE_LASER_EXPIRY)],
               N_("printers; laser training runs out 2 minutes after the demo's first start")),
    DemoMember("David Petit", "david@example.org", "M-0004", "centre",
               ["age:60+", "area:sud"], [("7C21E4A8", "active")],
               [("laser-1", "user", timedelta(days=-3))],
               N_("laser training expired 3 days ago")),
    DemoMember("Emma Leroy", "emma@example.org", "M-0005", "nord",
               ["age:under-18", "area:nord"], [("04D2E6F1A22B80", "active")], [],
               N_("no training yet (7-byte badge)")),
    DemoMember("Farid Haddad", "farid@example.org", "M-0006", "centre",
               ["age:26-40", "area:centre"], [("5A6B7C8D", "lost"), ("9E8D7C6B", "active")],
               [("laser-1", "user", None)],
               N_("laser; his first badge is declared lost")),
    DemoMember("Gaëlle Rousseau", "gaelle@example.org", "M-0007", "nord",
               ["age:18-25", "area:nord"], [("2C4E6A8B", "active")],
               [("printer-2", "user", timedelta(days=3))],
               N_("printer-2 only, expires in 3 days")),
    DemoMember("Hugo Moreau", "hugo@example.org", "M-0008", "centre",
               ["age:41-60", "area:sud"], [("6D1F3B5E", "active")],
               [("laser-1", "user", None), ("group:printers", "user", timedelta(days=60))],
               N_("trained on everything")),
]


UNKNOWN_UID = "DEADBEEF"  # a card nobody enrolled, offered by the panel


def seed(db: Any, rng: random.Random | None = None, now: datetime | None = None,
         lang: str = DEFAULT_LANG) -> None:
    """Insert the demo's sites, machines, nodes, members, badges, trainings and past usage.

    Written against the models directly (not the service layer) so it is one
    transaction the caller commits, before any node or publisher runs. `lang` ("fr" or "en")
    is the language of the names a person reads (machines, group, maintenance tasks).
    """
    from server import models as m

    if lang not in LANGUAGES:
        raise ValueError(f"lang: {lang!r} is not one of {', '.join(LANGUAGES)}")

    rng = rng or random.Random(7)
    now = now or datetime.now(UTC)
    sites = {slug: m.Site(slug=slug, name=name, timezone=TIMEZONE) for slug, name in SITES}
    db.add_all(sites.values())
    machines: dict[str, Any] = {}
    for spec in MACHINES:
        node = m.Node(slug=spec.slug, site=sites[spec.site])
        machine = m.Machine(slug=spec.slug, name=text(lang, spec.name), site=sites[spec.site],
                            kind=m.MachineKind(spec.kind), node=node, policy=dict(spec.policy),
                            requires_authorization=True, hourly_rate=spec.hourly_rate)
        db.add_all([node, machine])
        if spec.plug:
            db.add(m.NodeActuator(node=node, type="shelly", device=spec.plug, channel=0,
                                  lease_s=PLUG_LEASE_S))
        machines[spec.slug] = machine
    group = m.MachineGroup(slug=PRINTERS_GROUP[0], name=text(lang, PRINTERS_GROUP[1]),
                           machines=[machines[s.slug] for s in MACHINES
                                     if s.kind == "3d_printer"])
    db.add(group)
    db.flush()

    users_of: dict[str, list[Any]] = {spec.slug: [] for spec in MACHINES}
    for spec_m in MEMBERS:
        member = m.Member(name=spec_m.name, email=spec_m.email, member_no=spec_m.member_no,
                          site=sites[spec_m.site], tags=list(spec_m.tags), active=True,
                          created_at=now - timedelta(days=rng.randint(40, 400)))
        db.add(member)
        for uid, status in spec_m.badges:
            db.add(m.Badge(uid=uid, member=member, status=m.BadgeStatus(status)))
        for target, role, offset in spec_m.trainings:
            expires = None if offset is None else now + offset
            granted = now - timedelta(days=rng.randint(30, 200))
            if expires is not None and expires < granted:
                granted = expires - timedelta(days=365)
            auth = m.Authorization(member=member, role=m.AuthRole(role), granted_at=granted,
                                   expires_at=expires, granted_via="import")
            if target.startswith("group:"):
                auth.group = group
                covered = [machines["printer-1"], machines["printer-2"]]
            else:
                auth.machine = machines[target]
                covered = [machines[target]]
            db.add(auth)
            for machine in covered:
                users_of[machine.slug].append((member, spec_m.badges))
    db.flush()
    _seed_usage(db, m, machines, users_of, rng, now)
    db.flush()
    _seed_maintenance(db, m, machines, now, lang)


# (machine, task, every N active hours, hours left at the start: < 0 overdue, small = due)
MAINTENANCE = [
    ("laser-1", "Clean the lens and mirrors", 5.0, -0.4),
    ("laser-1", "Check the tube and the water cooling", 500.0, 320.0),
    ("printer-1", "Clean the nozzle and the bed", 20.0, 1.0),
    ("printer-2", "Lubricate the axes", 50.0, 35.0),
]


def _seed_maintenance(db: Any, m: Any, machines: dict[str, Any], now: datetime,
                      lang: str) -> None:
    """Tasks whose last intervention makes one overdue, one due soon and two fine."""
    from sqlalchemy import func, select

    for slug, name, interval, left in MAINTENANCE:
        machine = machines[slug]
        total = (db.scalar(select(func.coalesce(func.sum(m.UsageSession.active_s), 0.0))
                           .where(m.UsageSession.machine_id == machine.id)) or 0.0) / 3600.0
        task = m.MaintenanceTask(machine=machine, name=text(lang, name), interval_active_h=interval)
        db.add(task)
        done_at_hours = total - (interval - left)
        if done_at_hours > 0:  # otherwise: never done since the machine's first hour
            db.add(m.MaintenanceLog(machine_id=machine.id, task=task, note=text(lang, "demo"),
                                    done_at=now - timedelta(days=3),
                                    active_hours_at=round(done_at_hours, 2)))


def _seed_usage(db: Any, m: Any, machines: dict[str, Any], users_of: dict[str, list[Any]],
                rng: random.Random, now: datetime) -> None:
    """A week of finished sessions and a few denied taps, in the sites' opening hours."""
    tz = ZoneInfo(TIMEZONE)
    today = now.astimezone(tz).date()
    for days_back in range(7, 0, -1):
        day = today - timedelta(days=days_back)
        for slug, machine in machines.items():
            users = users_of[slug]
            if not users:
                continue
            start = datetime(day.year, day.month, day.day, 10, rng.randint(0, 59), tzinfo=tz)
            for _ in range(rng.randint(1, 4)):
                member, badges = rng.choice(users)
                uid = next(u for u, status in badges if status == "active")
                minutes = rng.randint(10, 50) if slug.startswith("laser") else rng.randint(40, 150)
                duration = minutes * 60 + rng.randint(0, 59)
                busy = 0.55 if slug.startswith("laser") else 0.9
                started = start.astimezone(UTC)
                ended = started + timedelta(seconds=duration)
                db.add(m.UsageSession(
                    session_uuid=str(uuid.uuid4()), machine=machine, node=machine.node,
                    member=member, badge_uid=uid, started_at=started, ended_at=ended,
                    duration_s=float(duration), active_s=float(round(duration * busy)),
                    end_reason="badge_out" if slug.startswith("laser") else "idle",
                    has_started_event=True, has_ended_event=True))
                start = start + timedelta(seconds=duration + rng.randint(600, 5400))
                if start.hour >= 19:
                    break
            if rng.random() < 0.6:
                reason = rng.choice(["not_authorized", "expired", "unknown_badge"])
                ts = datetime(day.year, day.month, day.day, 15, rng.randint(0, 59),
                              tzinfo=tz).astimezone(UTC)
                db.add(m.Event(event_id=str(uuid.uuid4()), node_id=machine.node.id, node_slug=slug,
                               type="badge.denied", ts=ts, received_at=ts,
                               boot=str(uuid.uuid5(uuid.NAMESPACE_URL, f"demo-{slug}")),
                               seq=0, data={"uid": UNKNOWN_UID if reason == "unknown_badge"
                                            else "7C21E4A8", "reason": reason}))


def ensure_admin(db: Any, password: str, lang: str | None = None) -> None:
    """Create the demo's admin login, or reset its password on a reused data dir; `lang` is
    the language of the admin's mails (kept if already set)."""
    from sqlalchemy import select

    from server import models as m
    from server.security import hash_password

    user = db.scalar(select(m.User).where(m.User.email == ADMIN_EMAIL))
    if user is None:
        user = m.User(email=ADMIN_EMAIL, role=m.UserRole.admin, password_hash="", locale=lang)
        db.add(user)
    user.password_hash = hash_password(password)
    user.active = True
