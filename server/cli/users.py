"""`fabpass user` and `fabpass token`: web logins and REST API tokens.
"""

from __future__ import annotations

import getpass
import sys

import click

from server.cli.support import service_errors, writer_session


@click.group()
def user() -> None:
    """Web logins."""


@user.command("create")
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice(["admin", "manager", "trainer"]))
@click.option("--member", "member_ref", default=None, help="member id or e-mail (trainers)")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@click.option("--site", "sites", multiple=True, metavar="SLUG",
              help="a site the manager looks after (repeat for several; --role manager only)")
def user_create(email: str, role: str, member_ref: str | None, password_stdin: bool,
                sites: tuple[str, ...]) -> None:
    """Create a web login (the password is prompted twice unless --password-stdin).

    A manager login with --site sites follows the scope rule of those sites, like a manager
    token (`fabpass token create --role manager --site SLUG`)."""
    from server import services

    if sites and role != "manager":
        raise click.UsageError("--site is only for --role manager")

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            raise click.ClickException("the passwords differ")
    with writer_session() as session, service_errors():
        member_id = services.find_member(session, member_ref).id if member_ref else None
        created = services.create_user(session, email, password, role, member_id, actor="cli",
                                       sites=list(sites))
        session.commit()
        where = f" for {', '.join(s.slug for s in created.sites)}" if created.sites else ""
        click.echo(f"user {created.id} {created.email} ({created.role.value}) created{where}",
                   err=True)


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
    with writer_session() as session, service_errors():
        _row, plain = services.create_token(session, name, role, list(sites), actor="cli")
        session.commit()
    click.echo(plain)
