"""The demo's data in the demo's language (issue 15): French by default, English with
`fabpass demo --lang en`; the names a person reads are never the other language's."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from fabpass.demo import seed
from fabpass.demo.startup import demo as demo_command
from server import models as m
from server.db import make_engine, make_sessionmaker, upgrade

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def seeded_names(tmp_path: Path, **kw: str) -> dict[str, list[str]]:
    url = f"sqlite:///{tmp_path}/fabpass.db"
    upgrade(url)
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as db:
            seed(db, random.Random(7), NOW, **kw)
            db.commit()
            return {
                "machines": sorted(db.scalars(select(m.Machine.name))),
                "groups": sorted(db.scalars(select(m.MachineGroup.name))),
                "tasks": sorted(db.scalars(select(m.MaintenanceTask.name))),
                "notes": sorted({n or "" for n in db.scalars(select(m.MaintenanceLog.note))}),
                "sites": sorted(db.scalars(select(m.Site.name))),
            }
    finally:
        engine.dispose()


def test_the_demo_is_seeded_in_french_by_default(tmp_path: Path) -> None:
    names = seeded_names(tmp_path)
    assert "Découpe laser Trotec Speedy 300" in names["machines"]
    assert names["groups"] == ["Toutes les imprimantes 3D"]
    assert "Nettoyer la lentille et les miroirs" in names["tasks"]
    assert names["notes"] == ["démo"]
    assert names["sites"] == ["Atelier Nord", "Fablab du Centre"]
    english = ("Clean", "Check", "Lubricate", "All ", "demo")
    assert not [n for values in names.values() for n in values if n.startswith(english)]


def test_the_demo_in_english_with_the_flag(tmp_path: Path) -> None:
    names = seeded_names(tmp_path, lang="en")
    assert "Laser Trotec Speedy 300" in names["machines"]
    assert names["groups"] == ["All 3D printers"]
    assert sorted(names["tasks"])[0] == "Check the tube and the water cooling"
    assert not [n for n in names["tasks"] + names["groups"] if any(c in n for c in "éèà")]


def test_an_unknown_language_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lang"):
        seeded_names(tmp_path, lang="de")
    result = CliRunner().invoke(demo_command, ["--lang", "de"])
    assert result.exit_code == 2 and "--lang" in result.output
    assert "--lang [fr|en]" in CliRunner().invoke(demo_command, ["--help"]).output
