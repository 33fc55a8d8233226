"""The node's durable state in `storage.dir`: the cached access list and the SQLite outbox.

`acl.json` is written atomically (temp file, fsync, rename, fsync of the
directory) and the previous good copy is kept as `acl.prev.json`, so a crash
at any point leaves one readable list. `outbox.db` holds every event until the
server acks it, the event sequence counter, the last persisted timestamp, the
remote lock flag and the open session's checkpoint, each change in one
transaction with `synchronous=FULL`.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from protocol import (
    MAX_ACL_BYTES,
    AccessList,
    Event,
    ProtocolError,
    format_ts,
    load_object,
    parse_ts,
)

log = logging.getLogger(__name__)


class StorageError(Exception):
    """The storage directory cannot be used (permissions, disk full)."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AclStore:
    """`acl.json` + `acl.prev.json` in the storage directory."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.path = self.dir / "acl.json"
        self.prev = self.dir / "acl.prev.json"

    def save(self, raw: bytes) -> None:
        """Keep the current file as the previous good copy and put `raw` in its place, atomically."""
        tmp = self.dir / f".acl.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        if self.path.exists() and self._read(self.path) is not None:
            os.replace(self.path, self.prev)
        os.replace(tmp, self.path)
        _fsync_dir(self.dir)

    def _read(self, path: Path) -> tuple[AccessList, dict[str, Any]] | None:
        try:
            data = path.read_bytes()
            raw = load_object(data, "cached acl", max_bytes=MAX_ACL_BYTES)
            return AccessList.decode(raw), raw
        except FileNotFoundError:
            return None
        except (OSError, ValueError, ProtocolError) as exc:
            log.error("cached access list %s is unreadable: %s", path, exc)
            return None

    def load(self) -> tuple[AccessList, dict[str, Any]] | None:
        """The cached list, else the previous good copy, else None (the node then denies all)."""
        found = self._read(self.path)
        if found is None and self.prev.exists():
            found = self._read(self.prev)
            if found is not None:
                log.warning("using the previous access list %s (version %s)", self.prev,
                            found[0].version)
        if found is None:
            log.error("no usable cached access list in %s: denying every badge (no_acl) "
                      "until the server sends one", self.dir)
        return found


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoint (k INTEGER PRIMARY KEY CHECK (k = 1), data TEXT NOT NULL);
"""


class Outbox:
    """Events not yet acked, plus the node's small persistent state; one thread at a time."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.db = self._open()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.error("outbox %s is corrupt (%s): moved to %s, starting an empty one",
                      self.path, exc, aside)
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self.path) + suffix)
                if p.exists():
                    os.replace(p, Path(str(aside) + suffix))
            self.db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            db.execute("SELECT count(*) FROM outbox").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------ meta

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = "
                        "excluded.v", (key, value))

    def last_ts(self) -> datetime | None:
        text = self.get_meta("last_ts")
        try:
            return parse_ts(text) if text else None
        except ProtocolError:
            return None

    # ------------------------------------------------------------ events

    def add(self, *, node: str, boot: str, etype: str, data: dict[str, Any], ts: datetime,
            checkpoint: dict[str, Any] | None = None, clear_checkpoint: bool = False) -> Event:
        """Store a new event (next seq) and the checkpoint change in one durable transaction."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT v FROM meta WHERE k = 'seq'").fetchone()
            seq = int(row[0]) + 1 if row else 1
            event = Event.create(node=node, boot=boot, seq=seq, ts=ts, type=etype, data=data)
            db.execute("INSERT INTO outbox(id, seq, payload, created) VALUES (?, ?, ?, ?)",
                       (event.id, seq, event.encode(), time.time()))
            self.set_meta("seq", str(seq))
            self.set_meta("last_ts", format_ts(ts))
            if clear_checkpoint:
                db.execute("DELETE FROM checkpoint")
            elif checkpoint is not None:
                self._put_checkpoint(checkpoint)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return event

    def acknowledge(self, ids: list[str]) -> int:
        if not ids:
            return 0
        cur = self.db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
        return max(cur.rowcount, 0)

    def pending(self) -> list[tuple[str, bytes]]:
        return [(str(r[0]), bytes(r[1])) for r in
                self.db.execute("SELECT id, payload FROM outbox ORDER BY seq")]

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    # ------------------------------------------------------------ checkpoint

    def _put_checkpoint(self, data: dict[str, Any]) -> None:
        self.db.execute("INSERT INTO checkpoint(k, data) VALUES (1, ?) ON CONFLICT(k) DO UPDATE "
                        "SET data = excluded.data", (json.dumps(data),))
        last = data.get("last_ts")
        if isinstance(last, str):
            self.set_meta("last_ts", last)

    def save_checkpoint(self, data: dict[str, Any]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self._put_checkpoint(data)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def load_checkpoint(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT data FROM checkpoint WHERE k = 1").fetchone()
        if row is None:
            return None
        try:
            data = json.loads(row[0])
        except ValueError:
            log.error("unreadable session checkpoint: dropping it")
            return {}
        return data if isinstance(data, dict) else {}

    def clear_checkpoint(self) -> None:
        self.db.execute("DELETE FROM checkpoint")
