"""`fabpass report …`: usage reports from the command line."""

from __future__ import annotations

import click


@click.group()
def report() -> None:
    """Usage reports."""
