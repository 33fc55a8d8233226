"""A small fixed data set for web and API tests: two sites, three roles, two machines.

Loaded by tests/web/conftest.py and tests/api/conftest.py (importlib mode: not a package).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from server import services
from server.models import Authorization, AuthRole, Node, Site, UnknownBadge, User, UserRole
from server.security import hash_password

PASSWORD = "correct horse battery"


@dataclass
class Seed:
    lab: int
    other: int
    laser: int
    printer: int
    alice: int  # member at lab, user of the laser
    bob: int  # member at other
    tom: int  # the trainer's member: trainer on the laser
    unknown_badge: int
    group: int
    alice_laser: int  # alice's authorization on the laser
    bob_printer: int  # bob's authorization on the printer (other site)
    manager_user: int
    token: str  # admin API token
    manager_token: str


def seed(db: Session) -> Seed:
    lab = services.create_site(db, "lab", "Main lab", "Europe/Paris", actor="test")
    other = services.create_site(db, "other", "Other lab", actor="test")
    laser = services.create_machine(db, "laser-1", "Laser cutter", "lab", kind="laser_cutter",
                                    node="laser-1", actor="test")
    printer = services.create_machine(db, "printer-1", "3D printer", "other", kind="3d_printer",
                                      node="printer-1", actor="test")
    alice = services.create_member(db, "Alice Martin", email="alice@example.org", site="lab",
                                   actor="test")
    services.enrol_badge(db, alice.id, "04A1B2C3", actor="test")
    bob = services.create_member(db, "Bob Durand", site="other", actor="test")
    tom = services.create_member(db, "Tom Trainer", site="lab", actor="test")
    services.enrol_badge(db, tom.id, "04FFEE01", actor="test")
    a1 = services.grant(db, alice.id, machine_id=laser.id, actor="test")
    a2 = services.grant(db, bob.id, machine_id=printer.id, actor="test")
    group = services.create_group(db, "lasers", "All laser cutters", [laser.id], actor="test")
    db.add(Authorization(member_id=tom.id, machine_id=laser.id, role=AuthRole.trainer,
                         granted_at=datetime.now(UTC) - timedelta(days=1)))
    ub = UnknownBadge(uid="04DEAD01", last_node_id=laser.node_id)
    db.add(ub)
    pw = hash_password(PASSWORD)
    site_lab = db.get(Site, lab.id)
    db.add(User(email="admin@example.org", password_hash=pw, role=UserRole.admin))
    manager_user = User(email="manager@example.org", password_hash=pw, role=UserRole.manager,
                        sites=[site_lab])
    db.add(manager_user)
    db.add(User(email="trainer@example.org", password_hash=pw, role=UserRole.trainer,
                member_id=tom.id))
    _, token = services.create_token(db, "tests", "admin", actor="test")
    _, mtoken = services.create_token(db, "tests-manager", "manager", ["lab"], actor="test")
    for n in db.query(Node).all():
        n.online = True
        n.state = "idle"
    db.commit()
    return Seed(manager_user=manager_user.id, lab=lab.id, other=other.id, laser=laser.id, printer=printer.id, alice=alice.id,
                bob=bob.id, tom=tom.id, unknown_badge=ub.id, group=group.id,
                alice_laser=a1.id, bob_printer=a2.id, token=token, manager_token=mtoken)


_TEMPLATE: dict[str, Any] = {}


def _sqlite_template() -> tuple[str, Seed]:
    """Migrate and seed one SQLite file per test process; tests get a copy (fast)."""
    if "path" not in _TEMPLATE:
        import tempfile

        from server.app import create_app, get_db
        from server.db import upgrade

        path = f"{tempfile.mkdtemp(prefix='fabpass-web-tpl-')}/template.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "test"})
        with app.app_context():
            _TEMPLATE["seed"] = seed(get_db())
        app.extensions["fabpass.engine"].dispose()
        _TEMPLATE["path"] = path
    return str(_TEMPLATE["path"]), _TEMPLATE["seed"]


def make_app(url: str, **extra: Any) -> tuple[Any, Seed]:
    """A migrated, seeded app on `url` (TESTING unless overridden)."""
    import shutil

    from server.app import create_app, get_db
    from server.db import upgrade

    config = {"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "test", **extra}
    if url.startswith("sqlite:///"):
        tpl, data = _sqlite_template()
        shutil.copyfile(tpl, url.removeprefix("sqlite:///"))
        return create_app(config), data
    upgrade(url)
    app = create_app(config)
    with app.app_context():
        data = seed(get_db())
    return app, data


CSRF_RE = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def csrf_from(html: str) -> str:
    m = CSRF_RE.search(html)
    assert m, "no CSRF token on the page"
    return m.group(1)


class Actions:
    """Log in and post forms like a browser would (CSRF token taken from a page)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def token(self, path: str = "/login") -> str:
        return csrf_from(self.client.get(path).get_data(as_text=True))

    def login(self, email: str, password: str = PASSWORD) -> Any:
        return self.client.post("/login", data={"email": email, "password": password,
                                                "csrf_token": self.token()})

    def post(self, path: str, data: dict[str, Any] | None = None, page: str = "/",
             **kw: Any) -> Any:
        return self.client.post(path, data={**(data or {}), "csrf_token": self.token(page)}, **kw)


