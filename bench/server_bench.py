"""Server benchmarks (placeholder while the server lands)."""
from __future__ import annotations

from bench.common import Context, NotAvailable, Result


def ingest(ctx: Context) -> list[Result]:
    raise NotAvailable("todo")


ingest_latency = revocation = web_pages = server_memory = ingest
