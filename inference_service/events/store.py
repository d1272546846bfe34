"""Where live events are kept: one table, ``live_events``, in SQLite beside a SQLite gallery.

A row is one thing a camera told (``appeared``, ``named``, ``renamed``, ``left``) with at most one
face crop (the track's largest face, a JPEG). Ids only grow (``AUTOINCREMENT``), so a listener that
saw event N resumes after it (``Last-Event-ID``) and misses none. Identities are matched by the
gallery's name key (case and Unicode form folded), so erasing a person erases every event that
names them, under any spelling the gallery accepts as theirs; deleted rows are overwritten
(``secure_delete``) and the write-ahead log folded, as the gallery does. On a PostgreSQL gallery
the same table lives in that database (``pg_store.PostgresEventStore``, same methods).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..gallery.names import identity_key

EVENTS_DB = "events.sqlite3"
TYPES = ("appeared", "named", "renamed", "left")

SCHEMA = """
CREATE TABLE IF NOT EXISTS live_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    camera TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('appeared', 'named', 'renamed', 'left')),
    identity TEXT,
    identity_key TEXT,
    previous TEXT,
    previous_key TEXT,
    track_id INTEGER NOT NULL,
    similarity REAL NOT NULL,
    seconds_in_view REAL NOT NULL DEFAULT 0,
    at REAL NOT NULL,
    face BLOB
);
CREATE INDEX IF NOT EXISTS live_events_at ON live_events (at);
CREATE INDEX IF NOT EXISTS live_events_identity ON live_events (identity_key);
CREATE INDEX IF NOT EXISTS live_events_previous ON live_events (previous_key);
"""
COLUMNS = (
    "id, camera, type, identity, previous, track_id, similarity, seconds_in_view, at, face IS NOT NULL AS has_face"
)


@dataclass(frozen=True)
class NewEvent:
    camera: str
    type: str
    identity: str | None
    previous: str | None
    track_id: int
    similarity: float
    seconds_in_view: float
    at: float
    face: bytes | None = None  # a JPEG


@dataclass(frozen=True)
class EventFilter:
    camera: str | None = None
    type: str | None = None
    identity: str | None = None
    since: float | None = None  # at >= since
    until: float | None = None  # at < until
    after_id: int | None = None  # id > after_id (ascending pages, the stream)
    before_id: int | None = None  # id < before_id (descending pages, the listing)


class EventStore(Protocol):
    def add(self, events: list[NewEvent]) -> list[int]: ...
    def query(self, where: EventFilter, limit: int, newest_first: bool = True) -> list[dict[str, Any]]: ...
    def face(self, event_id: int) -> bytes | None: ...
    def erase_identity(self, name: str) -> int: ...
    def expire(self, before: float) -> int: ...
    def named(self) -> list[str]: ...
    def reassign(self, old: str, new: str) -> int: ...
    def latest_id(self) -> int: ...
    def close(self) -> None: ...


def row_values(event: NewEvent) -> tuple:
    return (
        event.camera,
        event.type,
        event.identity,
        identity_key(event.identity) if event.identity else None,
        event.previous,
        identity_key(event.previous) if event.previous else None,
        event.track_id,
        event.similarity,
        event.seconds_in_view,
        event.at,
        event.face,
    )


def conditions(where: EventFilter, mark: str) -> tuple[str, list[Any]]:
    """SQL ``WHERE`` text and its parameters, with ``mark`` the driver's placeholder (? or %s)."""
    parts: list[str] = []
    args: list[Any] = []
    for column, op, value in (
        ("camera", "=", where.camera),
        ("type", "=", where.type),
        ("identity_key", "=", identity_key(where.identity) if where.identity else None),
        ("at", ">=", where.since),
        ("at", "<", where.until),
        ("id", ">", where.after_id),
        ("id", "<", where.before_id),
    ):
        if value is not None:
            parts.append(f"{column} {op} {mark}")
            args.append(value)
    return (" WHERE " + " AND ".join(parts)) if parts else "", args


class SQLiteEventStore:
    """``live_events`` in one SQLite file (WAL); one connection guarded by a lock."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA secure_delete=ON")  # an erased event's bytes are overwritten
            self._db.executescript(SCHEMA)

    def add(self, events: list[NewEvent]) -> list[int]:
        ids = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for event in events:
                    cur = self._db.execute(
                        "INSERT INTO live_events (camera, type, identity, identity_key, previous, previous_key, "
                        "track_id, similarity, seconds_in_view, at, face) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        row_values(event),
                    )
                    ids.append(int(cur.lastrowid or 0))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return ids

    def query(self, where: EventFilter, limit: int, newest_first: bool = True) -> list[dict[str, Any]]:
        sql, args = conditions(where, "?")
        order = "DESC" if newest_first else "ASC"
        with self._lock:
            rows = self._db.execute(
                f"SELECT {COLUMNS} FROM live_events{sql} ORDER BY id {order} LIMIT ?", (*args, limit)
            ).fetchall()
        return [dict(r) for r in rows]

    def face(self, event_id: int) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT face FROM live_events WHERE id = ?", (event_id,)).fetchone()
        return bytes(row[0]) if row and row[0] is not None else None

    def erase_identity(self, name: str) -> int:
        key = identity_key(name)
        with self._lock:
            cur = self._db.execute("DELETE FROM live_events WHERE identity_key = ? OR previous_key = ?", (key, key))
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # no copy left in the log either
        return cur.rowcount

    def expire(self, before: float) -> int:
        with self._lock:
            cur = self._db.execute("DELETE FROM live_events WHERE at < ?", (before,))
            if cur.rowcount:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return cur.rowcount

    def named(self) -> list[str]:
        """Every name an event holds (as identity or as a rename's previous one)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT identity FROM live_events WHERE identity IS NOT NULL "
                "UNION SELECT previous FROM live_events WHERE previous IS NOT NULL"
            ).fetchall()
        return [r[0] for r in rows]

    def reassign(self, old: str, new: str) -> int:
        """A person renamed or merged: their events name the new identity."""
        old_key, new_key = identity_key(old), identity_key(new)
        with self._lock:
            cur = self._db.execute(
                "UPDATE live_events SET identity = ?, identity_key = ? WHERE identity_key = ?", (new, new_key, old_key)
            )
            self._db.execute(
                "UPDATE live_events SET previous = ?, previous_key = ? WHERE previous_key = ?", (new, new_key, old_key)
            )
        return cur.rowcount

    def latest_id(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM live_events").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
