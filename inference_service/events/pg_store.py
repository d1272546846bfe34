"""Live events in PostgreSQL, beside a PostgreSQL gallery: the methods of
:class:`~.store.SQLiteEventStore`, so every replica lists and streams the same events.

Ids come from a ``bigserial``. (Two replicas inserting at once may commit ids out of order; a
stream resuming exactly between them could then skip the later-committed lower id. Watching each
camera from one replica at a time, issue 18's lease, is what would rule that out; it is not built.)
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ..gallery.names import identity_key
from ..gallery.pg_connect import connect_pool, pooled_cursor
from ..gallery.urls import redact
from .store import COLUMNS, EventFilter, NewEvent, conditions, row_values

SCHEMA_LOCK = 0x66616365_7602  # pg_advisory_xact_lock key: replicas starting at once create the table once

SCHEMA = """
CREATE TABLE IF NOT EXISTS live_events (
    id bigserial PRIMARY KEY,
    camera text NOT NULL,
    type text NOT NULL CHECK (type IN ('appeared', 'named', 'renamed', 'left')),
    identity text,
    identity_key text,
    previous text,
    previous_key text,
    track_id integer NOT NULL,
    similarity double precision NOT NULL,
    seconds_in_view double precision NOT NULL DEFAULT 0,
    at double precision NOT NULL,
    face bytea
);
CREATE INDEX IF NOT EXISTS live_events_at ON live_events (at);
CREATE INDEX IF NOT EXISTS live_events_identity ON live_events (identity_key);
CREATE INDEX IF NOT EXISTS live_events_previous ON live_events (previous_key);
"""


class PostgresEventStore:
    """``live_events`` in the gallery's PostgreSQL database, through a small connection pool."""

    def __init__(self, url: str, pool_size: int = 2) -> None:
        self.where = redact(url)
        self._pool = connect_pool(
            url, name="face-live-events", max_size=pool_size, what="the events' database", row_factory=dict_row
        )
        try:
            with self._cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                cur.execute(SCHEMA)
        except BaseException:
            self._pool.close()
            raise

    def _cursor(self) -> AbstractContextManager[psycopg.Cursor]:
        """A cursor inside one transaction; an unreachable server is a GalleryUnavailableError."""
        return pooled_cursor(self._pool, self.where)

    def add(self, events: list[NewEvent]) -> list[int]:
        ids = []
        with self._cursor() as cur:
            for event in events:
                cur.execute(
                    "INSERT INTO live_events (camera, type, identity, identity_key, previous, previous_key, "
                    "track_id, similarity, seconds_in_view, at, face) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    row_values(event),
                )
                row: Any = cur.fetchone()
                ids.append(int(row["id"]) if row else 0)
        return ids

    def query(self, where: EventFilter, limit: int, newest_first: bool = True) -> list[dict[str, Any]]:
        sql, args = conditions(where, "%s")
        order = "DESC" if newest_first else "ASC"
        with self._cursor() as cur:
            cur.execute(f"SELECT {COLUMNS} FROM live_events{sql} ORDER BY id {order} LIMIT %s", (*args, limit))
            return [dict(r) for r in cur.fetchall()]

    def face(self, event_id: int) -> bytes | None:
        with self._cursor() as cur:
            cur.execute("SELECT face FROM live_events WHERE id = %s", (event_id,))
            row: Any = cur.fetchone()
        return bytes(row["face"]) if row and row["face"] is not None else None

    def erase_identity(self, name: str) -> int:
        key = identity_key(name)
        with self._cursor() as cur:
            cur.execute("DELETE FROM live_events WHERE identity_key = %s OR previous_key = %s", (key, key))
            return cur.rowcount

    def expire(self, before: float) -> int:
        with self._cursor() as cur:
            cur.execute("DELETE FROM live_events WHERE at < %s", (before,))
            return cur.rowcount

    def named(self) -> list[str]:
        with self._cursor() as cur:
            cur.execute(
                "SELECT identity AS name FROM live_events WHERE identity IS NOT NULL "
                "UNION SELECT previous FROM live_events WHERE previous IS NOT NULL"
            )
            rows: Any = cur.fetchall()
        return [r["name"] for r in rows]

    def reassign(self, old: str, new: str) -> int:
        old_key, new_key = identity_key(old), identity_key(new)
        with self._cursor() as cur:
            cur.execute(
                "UPDATE live_events SET identity = %s, identity_key = %s WHERE identity_key = %s",
                (new, new_key, old_key),
            )
            count = cur.rowcount
            cur.execute(
                "UPDATE live_events SET previous = %s, previous_key = %s WHERE previous_key = %s",
                (new, new_key, old_key),
            )
        return count

    def latest_id(self) -> int:
        with self._cursor() as cur:
            cur.execute("SELECT COALESCE(MAX(id), 0) AS n FROM live_events")
            row: Any = cur.fetchone()
        return int(row["n"]) if row else 0

    def close(self) -> None:
        self._pool.close()
