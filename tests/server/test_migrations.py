"""Migrations and models agree, and 0002 builds the roll-ups of a database that has history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from server.db import make_engine, make_sessionmaker, upgrade
from server.models import Base, UsageRollup, UsageRollupDirty, UsageSession
from server.reports import usage_report, visits_report

T0 = "2026-03-01 00:00:00.000000"


def test_migrations_match_the_models(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_0002_marks_existing_sessions_and_the_first_report_builds_the_cells(db_url: str) -> None:
    upgrade(db_url, "0001")
    engine = make_engine(db_url)
    t0 = datetime(2026, 3, 28, 20, 0, tzinfo=UTC)  # the night Paris moves to summer time
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO sites (id, slug, name, timezone, created_at) "
                                 "VALUES (1, 'paris', 'Paris', 'Europe/Paris', :t)"), {"t": T0})
            conn.execute(sa.text(
                "INSERT INTO machines (id, slug, name, site_id, kind, requires_authorization, "
                "policy, locked, active, created_at) VALUES "
                "(1, 'laser', 'Laser', 1, 'laser_cutter', true, '{}', false, true, :t)"),
                {"t": T0})
            conn.execute(sa.text("INSERT INTO members (id, name, active, tags, created_at) "
                                 "VALUES (1, 'A', true, '[]', :t), (2, 'B', true, '[]', :t)"),
                         {"t": T0})
            # through the model's table, so times are stored as the ingest stores them
            conn.execute(sa.insert(UsageSession.__table__), [
                {"session_uuid": uuid.uuid4().hex, "machine_id": 1, "member_id": 1 + i % 2,
                 "badge_uid": "04AA", "started_at": t0 + timedelta(hours=3 * i),
                 "ended_at": t0 + timedelta(hours=3 * i + 2.5), "duration_s": 9000,
                 "active_s": 100, "has_started_event": True, "has_ended_event": True}
                for i in range(40)])
        upgrade(db_url)
        with make_sessionmaker(engine)() as db:
            assert db.scalar(sa.select(sa.func.count()).select_from(UsageRollupDirty)) == 1
            assert db.scalar(sa.select(sa.func.count()).select_from(UsageRollup)) == 0
            for dims in ("day", "month,machine", "week"):
                assert usage_report(db, dims) == usage_report(db, dims, use_rollups=False)
            assert visits_report(db, "day") == visits_report(db, "day", use_rollups=False)
            db.commit()
            assert db.scalar(sa.select(sa.func.count()).select_from(UsageRollup)) > 0
            assert db.scalar(sa.select(sa.func.count()).select_from(UsageRollupDirty)) == 0
        # and back: 0002 goes away cleanly (tables and triggers)
        upgrade_down(db_url)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE sessions SET active_s = 5"))  # no trigger left
            assert "usage_rollup" not in sa.inspect(conn).get_table_names()
    finally:
        engine.dispose()


def upgrade_down(url: str) -> None:
    from alembic import command

    from server.db import alembic_config

    command.downgrade(alembic_config(url), "0001")
