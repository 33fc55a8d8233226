"""Server commands: run the server or the ingest alone, migrate, users, tokens, import, grants.

Settings come from the environment (`server.app.settings_from_env`). Heavy
imports stay inside the functions so `fabpass node` on a Pi never loads them.
"""

from __future__ import annotations

import getpass
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

log = logging.getLogger(__name__)


def _settings() -> dict[str, Any]:
    from server.app import settings_from_env

    return settings_from_env()


def _session() -> Any:
    """A database session on the configured database (refusing an unmigrated one)."""
    from server.cli_support import database_session

    return database_session(writer=True)


@contextmanager
def _service_errors() -> Iterator[None]:
    from server.errors import Invalid, ServerError

    try:
        yield
    except Invalid as exc:
        details = "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
        raise click.ClickException(f"{exc.message}" + (f" ({details})" if details else "")) \
            from None
    except ServerError as exc:
        raise click.ClickException(exc.message) from None


# ---------------------------------------------------------------- running


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int, help="WSGI threads (≥ 8)")
@click.option("--ingest-shared", is_flag=True,
              help="take events through the MQTT 5 shared subscription $share/fabpass/…, so "
                   "`fabpass ingest --shared --worker N` processes (N ≥ 1) share the load")
def server(host: str, port: int, threads: int, ingest_shared: bool) -> None:
    """Run the web UI + REST API and the MQTT ingest and access-list publisher."""
    from server.app import ConfigurationError
    from server.db import DatabaseError
    from server.runner import run_server

    try:
        run_server(host, port, threads=threads, shared=ingest_shared)
    except (ConfigurationError, DatabaseError) as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@click.option("--worker", type=int, default=None,
              help="worker number (client id fabpass-ingest-N); several workers share events")
@click.option("--shared/--no-shared", default=False,
              help="receive events through the MQTT 5 shared subscription $share/fabpass/…")
@click.option("--client-id", default=None, help="MQTT client id (fixed: the broker keeps its "
              "session). Default fabpass-ingest[-N], or FABPASS_MQTT_CLIENT_ID")
@click.option("--publisher/--no-publisher", default=False,
              help="also publish access lists (when no `fabpass server` runs)")
def ingest(worker: int | None, shared: bool, client_id: str | None, publisher: bool) -> None:
    """Run the MQTT ingest alone (events and statuses into the database)."""
    from server.db import DatabaseError
    from server.runner import run_ingest

    try:
        run_ingest(_settings(), worker=worker, shared=shared, client_id=client_id,
                   publisher=publisher)
    except DatabaseError as exc:
        raise click.ClickException(str(exc)) from None


# ---------------------------------------------------------------- database


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations (Alembic) to FABPASS_DATABASE_URL."""
    from server.db import upgrade

    url = _settings()["DATABASE_URL"]
    upgrade(url, revision)
    click.echo(f"database at {revision}", err=True)


@db.command("rollups")
@click.option("--rebuild", is_flag=True, help="drop every cell and rebuild from the sessions")
def db_rollups(rebuild: bool) -> None:
    """Bring the report roll-ups up to date now (the server does it every few seconds)."""
    import time

    from server import rollups
    from server.cli_support import database_session

    with database_session(writer=True, commit=True) as session:
        t = time.perf_counter()
        res = rollups.rebuild_all(session) if rebuild else rollups.refresh(session)
    click.echo(f"roll-ups: {res.machines} machines, {res.day_cells} day cells and "
               f"{res.month_cells} month cells rebuilt from {res.dirty_rows} marks "
               f"in {time.perf_counter() - t:.1f} s", err=True)


# ---------------------------------------------------------------- users and tokens


@click.group()
def user() -> None:
    """Web logins."""


@user.command("create")
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice(["admin", "manager", "trainer"]))
@click.option("--member", "member_ref", default=None, help="member id or e-mail (trainers)")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
def user_create(email: str, role: str, member_ref: str | None, password_stdin: bool) -> None:
    """Create a web login (the password is prompted twice unless --password-stdin)."""
    from server import services

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            raise click.ClickException("the passwords differ")
    with _session() as session, _service_errors():
        member_id = services.find_member(session, member_ref).id if member_ref else None
        created = services.create_user(session, email, password, role, member_id, actor="cli")
        session.commit()
        click.echo(f"user {created.id} {created.email} ({created.role.value}) created", err=True)


@click.group()
def token() -> None:
    """REST API tokens."""


@token.command("create")
@click.option("--name", required=True)
@click.option("--role", default="admin", show_default=True,
              type=click.Choice(["admin", "manager"]))
@click.option("--site", "sites", multiple=True, metavar="SLUG",
              help="a site the manager token reaches (repeat for several; required for a "
                   "manager token, refused for an admin token)")
def token_create(name: str, role: str, sites: tuple[str, ...]) -> None:
    """Create an API token and print it, alone on stdout, once (only its hash is stored).

    A manager token reaches only the members, machines, trainings, sessions, nodes and reports
    of its --site sites (and members without a site), like a manager login."""
    from server import services

    if role == "manager" and not sites:
        raise click.UsageError("a manager token needs at least one --site SLUG")
    if role == "admin" and sites:
        raise click.UsageError("an admin token reaches every site: --site is only for "
                               "--role manager")
    with _session() as session, _service_errors():
        _row, plain = services.create_token(session, name, role, list(sites), actor="cli")
        session.commit()
    click.echo(plain)


# ---------------------------------------------------------------- members


@click.group()
def members() -> None:
    """Members."""


@members.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--mapping", default=None,
              help="column mapping: 'helloasso' or a TOML file ([columns] header = field)")
@click.option("--site", default=None, help="site slug for rows without a site column")
@click.option("--dry-run", is_flag=True, help="check everything, change nothing")
def members_import(file: Path, mapping: str | None, site: str | None, dry_run: bool) -> None:
    """Import members from CSV: every row or none; errors name their line."""
    from server.importer import import_members

    with _session() as session, _service_errors():
        result = import_members(session, file.read_bytes(), mapping=mapping, site=site,
                                dry_run=dry_run)
        if not result.ok:
            for line in result.errors:
                click.echo(f"{file}: {line}", err=True)
            session.rollback()
            raise click.ClickException(
                f"{len(result.errors)} error(s) in {result.rows} row(s): nothing imported")
        session.commit()
    verb = "would import" if dry_run else "imported"
    click.echo(f"{verb} {result.rows} row(s): {result.created} created, {result.updated} "
               f"updated, {result.badges} badge(s)", err=True)


# ---------------------------------------------------------------- authorizations


@click.command()
@click.option("--member", "member_ref", required=True, help="member id or e-mail")
@click.option("--machine", default=None, help="machine slug")
@click.option("--group", default=None, help="machine group slug")
@click.option("--role", default="user", show_default=True, type=click.Choice(["user", "trainer"]))
@click.option("--expires", default=None, help="YYYY-MM-DD (valid through that day, UTC)")
def grant(member_ref: str, machine: str | None, group: str | None, role: str,
          expires: str | None) -> None:
    """Grant a training authorization (prints its id)."""
    from server import services

    if (machine is None) == (group is None):
        raise click.UsageError("give exactly one of --machine and --group")
    with _session() as session, _service_errors():
        member = services.find_member(session, member_ref)
        machine_id = services.get_machine_by_slug(session, machine).id if machine else None
        group_id = services.get_group_by_slug(session, group).id if group else None
        auth = services.grant(session, member.id, machine_id=machine_id, group_id=group_id,
                              role=role, expires_at=expires, via="cli", actor="cli")
        session.commit()
        click.echo(str(auth.id))


@click.command()
@click.argument("authorization_id", type=int)
@click.option("--reason", default=None)
def revoke(authorization_id: int, reason: str | None) -> None:
    """Revoke a training authorization (kept for the audit trail)."""
    from server import services

    with _session() as session, _service_errors():
        services.revoke(session, authorization_id, reason=reason, actor="cli")
        session.commit()
    click.echo(f"authorization {authorization_id} revoked", err=True)
