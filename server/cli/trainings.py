"""`fabpass grant` and `fabpass revoke`: training authorizations from the command line.
"""

from __future__ import annotations

import click

from server.cli.support import service_errors, writer_session


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
    with writer_session() as session, service_errors():
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

    with writer_session() as session, service_errors():
        services.revoke(session, authorization_id, reason=reason, actor="cli")
        session.commit()
    click.echo(f"authorization {authorization_id} revoked", err=True)
