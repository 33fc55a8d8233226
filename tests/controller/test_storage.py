"""The access-list cache and the SQLite outbox: atomic files, fallbacks, durable seq and checkpoints."""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from controller_testkit import acl_dict

from controller.sdnotify import notify, watchdog_interval
from controller.storage import AclStore, Outbox
from protocol import Event, parse_ts

TS = parse_ts("2026-11-22T10:00:00Z")


def raw(version: int) -> bytes:
    return json.dumps(acl_dict(version=version)).encode()


def test_acl_store_keeps_previous_copy(tmp_path: Path) -> None:
    store = AclStore(tmp_path)
    assert store.load() is None
    store.save(raw(1))
    store.save(raw(2))
    loaded = store.load()
    assert loaded and loaded[0].version == 2
    assert json.loads(store.prev.read_text())["version"] == 1
    assert not list(tmp_path.glob(".acl.*"))  # no temp file left


def test_corrupt_acl_falls_back_to_previous(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = AclStore(tmp_path)
    store.save(raw(1))
    store.save(raw(2))
    store.path.write_bytes(b'{"v":1,"version":3,"si')  # torn write
    loaded = store.load()
    assert loaded and loaded[0].version == 1
    store.prev.write_bytes(b"\x00\x01garbage")
    with caplog.at_level(logging.ERROR):
        assert store.load() is None
    assert "denying every badge (no_acl)" in caplog.text


def test_saving_over_a_corrupt_file_keeps_the_good_previous(tmp_path: Path) -> None:
    store = AclStore(tmp_path)
    store.save(raw(1))
    store.save(raw(2))
    store.path.write_bytes(b"not json")
    store.save(raw(3))  # the corrupt current file must not replace the good previous copy
    assert json.loads(store.prev.read_text())["version"] == 1
    loaded = store.load()
    assert loaded and loaded[0].version == 3


def _add(box: Outbox, **kw: Any) -> Event:
    return box.add(node="laser-1", boot="00000000-0000-4000-8000-000000000001",
                   etype="badge.denied", data={"uid": "04A1B2C3", "reason": "unknown_badge"},
                   ts=TS, **kw)


def test_outbox_seq_persists_and_acks_remove(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    assert box.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert box.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    e1, e2 = _add(box), _add(box)
    assert (e1.seq, e2.seq) == (1, 2)
    box.close()
    box = Outbox(tmp_path / "outbox.db")
    e3 = _add(box)
    assert e3.seq == 3
    assert [i for i, _ in box.pending()] == [e1.id, e2.id, e3.id]
    assert Event.decode(box.pending()[0][1]).id == e1.id
    assert box.acknowledge([e2.id, "not-an-id"]) == 1
    assert [i for i, _ in box.pending()] == [e1.id, e3.id]
    assert box.last_ts() == TS


def test_checkpoint_changes_with_the_event(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    cp = {"session": "s", "last_ts": "2026-11-22T11:00:00.000Z"}
    _add(box, checkpoint=cp)
    assert box.load_checkpoint() == cp
    assert box.last_ts() == parse_ts("2026-11-22T11:00:00Z")
    box.save_checkpoint({**cp, "elapsed_s": 5})
    assert box.load_checkpoint()["elapsed_s"] == 5  # type: ignore[index]
    _add(box, clear_checkpoint=True)
    assert box.load_checkpoint() is None


def test_invalid_event_is_not_stored(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    with pytest.raises(ValueError):
        box.add(node="laser-1", boot="00000000-0000-4000-8000-000000000001", etype="badge.denied",
                data={"uid": "nope", "reason": "unknown_badge"}, ts=TS)
    assert box.count() == 0 and box.get_meta("seq") is None


def test_corrupt_outbox_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"this is not a database" * 100)
    box = Outbox(path)
    assert _add(box).seq == 1
    assert list(tmp_path.glob("outbox.db.corrupt-*"))


def test_sd_notify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not notify("READY=1") or os.environ.get("NOTIFY_SOCKET")
    addr = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(addr)
        server.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", addr)
        assert notify("READY=1")
        assert server.recv(100) == b"READY=1"
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 10.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert watchdog_interval() is None
