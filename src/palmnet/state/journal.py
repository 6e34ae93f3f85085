"""SQLite journal of every kernel object and process a lab owns.

An object is written here *before* it is created, so `down` can remove it
after a crash at any point (even SIGKILL between the two). Rows are removed
after the object is gone. The database lives on tmpfs; SQLite's commit reaches
the page cache before `commit()` returns, which survives the death of the
process, so `synchronous=OFF` is safe here (only a machine crash loses it,
and that also loses the namespaces).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    node TEXT,
    data TEXT NOT NULL DEFAULT '{}',
    UNIQUE (kind, name)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


@dataclass(frozen=True)
class Entry:
    seq: int
    kind: str  # netns, mount, process, dir, sysctl
    name: str
    node: str | None
    data: dict[str, Any]


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        # One connection shared by the threads of a verb (LXD configures hosts in
        # parallel), each statement under a lock.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.lock = threading.RLock()
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA journal_mode=MEMORY")
        self.db.executescript(SCHEMA)

    @classmethod
    def open(cls, path: Path) -> Journal:
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(path)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, kind: str, name: str, node: str | None = None, **data: Any) -> None:
        self.record_many([(kind, name, node, data)])

    def record_many(self, rows: Iterable[tuple[str, str, str | None, dict[str, Any]]]) -> None:
        with self.lock, self.db:
            self.db.executemany(
                "INSERT INTO objects (kind, name, node, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (kind, name) DO UPDATE SET data = excluded.data, node = excluded.node",
                [(k, n, node, json.dumps(d)) for k, n, node, d in rows],
            )

    def forget(self, kind: str, name: str) -> None:
        with self.lock, self.db:
            self.db.execute("DELETE FROM objects WHERE kind = ? AND name = ?", (kind, name))

    def entries(self, kind: str | None = None, node: str | None = None) -> list[Entry]:
        query = "SELECT seq, kind, name, node, data FROM objects"
        where, args = [], []
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if node:
            where.append("node = ?")
            args.append(node)
        if where:
            query += " WHERE " + " AND ".join(where)
        with self.lock:
            rows = self.db.execute(query + " ORDER BY seq", args).fetchall()
        return [Entry(s, k, n, nd, json.loads(d)) for s, k, n, nd, d in rows]

    def set_meta(self, key: str, value: Any) -> None:
        with self.lock, self.db:
            self.db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    def meta(self, key: str, default: Any = None) -> Any:
        with self.lock:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_blob(self, key: str, value: bytes | None) -> None:
        """Bytes that are not JSON (a plan's snapshot); None removes them."""
        with self.lock, self.db:
            if value is None:
                self.db.execute("DELETE FROM blobs WHERE key = ?", (key,))
                return
            self.db.execute(
                "INSERT INTO blobs (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def blob(self, key: str) -> bytes | None:
        with self.lock:
            row = self.db.execute("SELECT value FROM blobs WHERE key = ?", (key,)).fetchone()
        return bytes(row[0]) if row else None
