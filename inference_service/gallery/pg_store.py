"""The gallery in PostgreSQL: one database shared by any number of API replicas.

Every write is one transaction that also appends to ``gallery_changes`` (a change log with a
monotonic ``seq``) and sends ``NOTIFY face_gallery, '<seq>'``, so replicas can apply what others
wrote (see ``replica.py``). Each write transaction first takes one advisory lock, held to its
commit: sequence numbers are then handed out in commit order, and a replica that has read up
to ``seq`` N never later finds a smaller one appear (the gap a ``bigserial`` leaves between
taking a number and committing it). Gallery writes are rare, so serialising them costs nothing.

The change log holds face ids and names, never embeddings: a replica re-reads added faces by id,
so an erased person's vectors do not linger in the log. psycopg exceptions stay inside this
module: unreachable server -> ``GalleryUnavailableError``, full disk -> ``GalleryFullError``.
The change log's format is ``pg_changes``'s, the bulk load's ``pg_copy``'s, the connections'
``pg_connect``'s and the people's data (consent, expiry, audit, export) ``pg_people``'s.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import numpy as np
import psycopg

from .audit import current
from .errors import GalleryMismatchError, GalleryOpenError
from .names import name_key
from .pg_changes import (
    CHANNEL,
    ChangeBatch,
    WriteObserver,
    face_hex,
    face_record,
    log_position,
    one,
    read_changes_after,
)
from .pg_connect import connect_pool, conninfo, pooled_cursor
from .pg_copy import COPY_FACES, copy_row_dtype, parse_copy
from .pg_curation import PostgresCuration
from .store import FaceRecord, FaceTable, GalleryStore
from .urls import redact

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4
# pg_advisory_xact_lock keys: one serialises every gallery write, one the schema creation.
WRITE_LOCK = 0x66616365_7301
SCHEMA_LOCK = 0x66616365_7300
# Change-log trimming: an entry goes once it is both older than a day and not among the last
# 10,000; a replica further behind than that reloads the whole gallery instead of replaying.
LOG_KEEP = 10_000
LOG_KEEP_S = 86_400
TRIM_EVERY = 100  # writes between two trims
_HEX_ID = re.compile(r"^[0-9a-f]{32}$")

# Version 4: a small JPEG crop per face kept at enrollment, erased with its face by the foreign key.
_SCHEMA_V4 = """
CREATE TABLE IF NOT EXISTS gallery_face_thumbnails (
    face_id uuid PRIMARY KEY REFERENCES gallery_faces(face_id) ON DELETE CASCADE,
    jpeg bytea NOT NULL
);
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gallery_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS gallery_identities (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name_key text NOT NULL UNIQUE,
    name text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS gallery_faces (
    row_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    face_id uuid NOT NULL UNIQUE,
    identity_id integer NOT NULL REFERENCES gallery_identities(id) ON DELETE CASCADE,
    embedding bytea NOT NULL,
    created_at timestamptz NOT NULL,
    box_x1 real, box_y1 real, box_x2 real, box_y2 real
);
CREATE INDEX IF NOT EXISTS gallery_faces_by_identity ON gallery_faces(identity_id, row_id);
CREATE SEQUENCE IF NOT EXISTS gallery_change_seq;
CREATE TABLE IF NOT EXISTS gallery_changes (
    seq bigint PRIMARY KEY,
    op text NOT NULL CHECK (op IN ('add', 'delete_identity', 'delete_face')),
    name_key text NOT NULL,
    name text NOT NULL,
    face_ids uuid[] NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
"""

# Version 2: a consent record and an expiry per identity, and the audit trail (no images, no
# embeddings). Every statement is idempotent, so a version-1 database is upgraded by running it.
_SCHEMA_V2 = """
ALTER TABLE gallery_identities ADD COLUMN IF NOT EXISTS consent text;
ALTER TABLE gallery_identities ADD COLUMN IF NOT EXISTS consent_at timestamptz;
ALTER TABLE gallery_identities ADD COLUMN IF NOT EXISTS consent_by text;
ALTER TABLE gallery_identities ADD COLUMN IF NOT EXISTS expires_at timestamptz;
CREATE INDEX IF NOT EXISTS gallery_identities_by_expiry ON gallery_identities(expires_at);
CREATE TABLE IF NOT EXISTS gallery_audit (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    action text NOT NULL,
    name text,
    name_key text,
    face_ids text[] NOT NULL,
    key_label text,
    client text
);
CREATE INDEX IF NOT EXISTS gallery_audit_by_key ON gallery_audit(name_key, seq);
"""

# Version 3: an identity's history is its own (see sqlite_file's version 4, the same change): a
# ``uid`` per identity, audit rows and the consent history pointing at it, the consent text in
# the enrollment's audit row. Idempotent like version 2; _V3_BACKFILL runs once, at the upgrade.
_SCHEMA_V3 = """
ALTER TABLE gallery_identities ADD COLUMN IF NOT EXISTS uid uuid UNIQUE DEFAULT gen_random_uuid();
ALTER TABLE gallery_audit ADD COLUMN IF NOT EXISTS identity_uid uuid;
ALTER TABLE gallery_audit ADD COLUMN IF NOT EXISTS consent text;
ALTER TABLE gallery_audit ADD COLUMN IF NOT EXISTS detail text;
CREATE INDEX IF NOT EXISTS gallery_audit_by_uid ON gallery_audit(identity_uid, seq);
CREATE TABLE IF NOT EXISTS gallery_consents (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    identity_uid uuid NOT NULL,
    consent text NOT NULL,
    given_at timestamptz NOT NULL,
    key_label text
);
CREATE INDEX IF NOT EXISTS gallery_consents_by_uid ON gallery_consents(identity_uid, seq);
CREATE TABLE IF NOT EXISTS gallery_dismissed_pairs (
    uid_a uuid NOT NULL,
    uid_b uuid NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    key_label text,
    PRIMARY KEY (uid_a, uid_b)
);
"""
# A rename, merge or move is logged as ``move``: the faces named leave the identity named and are
# re-read (with the identity they belong to now) by the replicas, like an ``add``.
_V3_CHANGE_OPS = """
ALTER TABLE gallery_changes DROP CONSTRAINT IF EXISTS gallery_changes_op_check;
ALTER TABLE gallery_changes ADD CONSTRAINT gallery_changes_op_check
    CHECK (op IN ('add', 'delete_identity', 'delete_face', 'move'));
"""
_V3_BACKFILL = """
UPDATE gallery_audit a SET identity_uid = i.uid FROM gallery_identities i
WHERE a.name_key = i.name_key AND a.identity_uid IS NULL AND a.seq > coalesce((SELECT max(e.seq) FROM gallery_audit e
    WHERE e.name_key = a.name_key AND e.action IN ('delete_identity', 'expire')), 0);
INSERT INTO gallery_consents (identity_uid, consent, given_at, key_label)
SELECT uid, consent, coalesce(consent_at, created_at), consent_by FROM gallery_identities WHERE consent IS NOT NULL;
"""


class PostgresStore(PostgresCuration, GalleryStore):
    """Faces in PostgreSQL through a small psycopg connection pool."""

    replicated = True

    def __init__(
        self,
        url: str,
        embedder_name: str | None = None,
        dim: int | None = None,
        *,
        pool_size: int = 4,
        log_keep: int = LOG_KEEP,
        log_keep_s: float = LOG_KEEP_S,
        trim_every: int = TRIM_EVERY,
    ) -> None:
        self.url = url
        self.where = redact(url)
        self.log_keep = log_keep
        self.log_keep_s = log_keep_s
        self.trim_every = trim_every
        self.loaded_seq = 0  # the change-log position the last load_all/load_table saw
        self.observer: WriteObserver | None = None
        self._embedder_name: str | None = None
        self.conninfo = conninfo(url, "face-gallery")
        self._pool = connect_pool(url, name="face-gallery", max_size=pool_size, what="the gallery database")
        try:
            self._create_schema()
            self._check_embedder(embedder_name, dim)
        except BaseException:
            self._pool.close()
            raise

    # -- plumbing -----------------------------------------------------------------------------
    def _cursor(self, transaction: bool = True) -> AbstractContextManager[psycopg.Cursor]:
        """A cursor on a pooled connection (inside one transaction); driver errors translated."""
        return pooled_cursor(self._pool, self.where, transaction)

    def _create_schema(self) -> None:
        with self._cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            cur.execute(_SCHEMA)
            cur.execute("SELECT value FROM gallery_meta WHERE key = 'schema_version'")
            row = cur.fetchone()
            if row is not None and int(row[0]) > SCHEMA_VERSION:
                raise GalleryOpenError(
                    f"gallery database {self.where} has schema version {row[0]}, newer than this "
                    f"service's {SCHEMA_VERSION}: upgrade the service"
                )
            cur.execute(_SCHEMA_V2)
            cur.execute(_SCHEMA_V3)
            cur.execute(_SCHEMA_V4)
            if row is None or int(row[0]) < SCHEMA_VERSION:
                cur.execute(_V3_CHANGE_OPS)
                if row is not None and int(row[0]) < 3:
                    cur.execute(_V3_BACKFILL)
                if row is not None:
                    log.info("gallery %s: upgraded from schema version %s to %d", self.where, row[0], SCHEMA_VERSION)
                self._set_meta(cur, "schema_version", str(SCHEMA_VERSION))

    def _meta(self, cur: psycopg.Cursor, key: str) -> str | None:
        cur.execute("SELECT value FROM gallery_meta WHERE key = %s", (key,))
        row = cur.fetchone()
        return row[0] if row else None

    @staticmethod
    def _set_meta(cur: psycopg.Cursor, key: str, value: str) -> None:
        cur.execute(
            "INSERT INTO gallery_meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (key, value),
        )

    def _check_embedder(self, embedder_name: str | None, dim: int | None) -> None:
        if embedder_name is None:
            self._embedder_name = self.embedder()
            return
        self._embedder_name = embedder_name
        with self._cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            stored = self._meta(cur, "embedder")
            if stored is not None and stored != embedder_name:
                raise GalleryMismatchError(
                    f"gallery {self.where} holds {stored} embeddings ({self._meta(cur, 'dim')}-d) but the "
                    f"service uses {embedder_name}; vectors of different models cannot be compared. Use "
                    f"FACE_EMBEDDER={stored}, or point FACE_GALLERY at another database."
                )
            if stored is None:
                self._set_meta(cur, "embedder", embedder_name)
                if dim is not None:
                    self._set_meta(cur, "dim", str(dim))

    def _write(self, work: Callable[[psycopg.Cursor], tuple[Any, tuple | None]]) -> Any:
        """Run ``work`` as one serialised write transaction that logs and announces its change.

        ``work`` returns (result, change) with change = (op, name_key, name, face_ids) or None
        when nothing changed. The observer (this process's replica sync) reads what others
        committed before this write inside the same transaction, so it can apply those first.
        """
        observer = self.observer
        if observer is None:
            return self._write_logged(work, None)
        with observer.lock:
            return self._write_logged(work, observer)

    def _write_logged(
        self, work: Callable[[psycopg.Cursor], tuple[Any, tuple | None]], observer: WriteObserver | None
    ) -> Any:
        earlier = None
        seq = None
        with self._cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            if observer is not None:
                earlier = observer.before_write(lambda after: read_changes_after(cur, after, self._embedder_name or ""))
            result, change = work(cur)
            if change is not None:
                cur.execute(
                    "INSERT INTO gallery_changes (seq, op, name_key, name, face_ids) "
                    "VALUES (nextval('gallery_change_seq'), %s, %s, %s, %s) RETURNING seq",
                    change,
                )
                seq = one(cur)
                cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(seq)))
                if seq % self.trim_every == 0:
                    self._trim(cur, seq)
        if observer is not None and earlier is not None:
            observer.after_commit(earlier, seq)
        return result

    def _trim(self, cur: psycopg.Cursor, seq: int) -> None:
        cur.execute(
            "WITH gone AS (DELETE FROM gallery_changes WHERE seq <= %s AND at < now() - make_interval(secs => %s) "
            "RETURNING seq) SELECT max(seq) FROM gone",
            (seq - self.log_keep, self.log_keep_s),
        )
        gone = one(cur)
        if gone is not None:
            trimmed = int(self._meta(cur, "trimmed_through") or 0)
            self._set_meta(cur, "trimmed_through", str(max(trimmed, gone)))

    # -- reads --------------------------------------------------------------------------------
    def embedder(self) -> str | None:
        with self._cursor() as cur:
            return self._meta(cur, "embedder")

    def dim(self) -> int | None:
        with self._cursor() as cur:
            value = self._meta(cur, "dim")
        return int(value) if value else None

    def load_all(self) -> list[FaceRecord]:
        with self._cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            self.loaded_seq = log_position(cur)
            embedder = self._meta(cur, "embedder") or ""
            cur.execute(
                "SELECT f.face_id, i.name, f.embedding, f.created_at, f.box_x1, f.box_y1, f.box_x2, f.box_y2 "
                "FROM gallery_faces f JOIN gallery_identities i ON i.id = f.identity_id "
                "ORDER BY i.name_key, f.row_id"
            )
            return [face_record(row, embedder) for row in cur]

    def load_table(self, dim: int) -> FaceTable:
        """Every face in one binary COPY read straight into numpy, in table order (not grouped)."""
        row_dtype = copy_row_dtype(dim)
        with self._cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            self.loaded_seq = log_position(cur)
            cur.execute("SELECT id, name FROM gallery_identities ORDER BY id")
            identities = cur.fetchall()
            buffer = bytearray()
            # One CopyData message per row: read() is the cheapest way through a million of them
            # (measured: faster than iterating the Copy object or filling a preallocated buffer).
            with cur.copy(COPY_FACES) as copy:
                while chunk := copy.read():
                    buffer += chunk
        return parse_copy(buffer, row_dtype, identities, dim)

    def face_ids(self) -> set[str]:
        """Every stored face id (what ``copy`` skips when re-run)."""
        with self._cursor() as cur:
            cur.execute("SELECT face_id FROM gallery_faces")
            return {face_hex(row[0]) for row in cur}

    def read_changes(self, after: int) -> ChangeBatch:
        """The changes committed after ``after``, read in one snapshot (the replica's poll)."""
        with self._cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            return read_changes_after(cur, after, self._embedder_name or "")

    # -- writes -------------------------------------------------------------------------------
    def add_faces(self, records: Sequence[FaceRecord]) -> None:
        """Store the records (all or none); a face id already stored is skipped, so a repeated
        copy adds nothing twice."""
        if not records:
            return
        for rec in records:
            if not _HEX_ID.match(rec.face_id):
                raise ValueError(f"face id {rec.face_id!r} is not a 32-digit hex uuid")
        by_key: dict[str, list[FaceRecord]] = {}
        for rec in records:
            by_key.setdefault(name_key(rec.identity), []).append(rec)

        context = current()

        def work(cur: psycopg.Cursor) -> tuple[None, tuple | None]:
            if self._meta(cur, "embedder") is None:
                self._embedder_name = records[0].embedder
                self._set_meta(cur, "embedder", records[0].embedder)
                self._set_meta(cur, "dim", str(len(records[0].embedding)))
            added: list[tuple[str, str, list[uuid.UUID]]] = []
            for key, group in by_key.items():
                cur.execute(
                    "INSERT INTO gallery_identities (name_key, name, created_at) VALUES (%s, %s, %s) "
                    "ON CONFLICT (name_key) DO NOTHING",
                    (key, group[0].identity, datetime.fromisoformat(group[0].created_at)),
                )
                cur.execute("SELECT id, name, uid FROM gallery_identities WHERE name_key = %s", (key,))
                identity_id, name, uid = _row(cur)
                boxes = [r.box if r.box is not None else (None,) * 4 for r in group]
                cur.execute(
                    "INSERT INTO gallery_faces (face_id, identity_id, embedding, created_at, "
                    "box_x1, box_y1, box_x2, box_y2) "
                    "SELECT f, %s, e, t, x1, y1, x2, y2 FROM unnest(%s::uuid[], %s::bytea[], %s::timestamptz[], "
                    "%s::real[], %s::real[], %s::real[], %s::real[]) AS u(f, e, t, x1, y1, x2, y2) "
                    "ON CONFLICT (face_id) DO NOTHING RETURNING face_id",
                    (
                        identity_id,
                        [uuid.UUID(r.face_id) for r in group],
                        [np.asarray(r.embedding, dtype="<f4").tobytes() for r in group],
                        [datetime.fromisoformat(r.created_at) for r in group],
                        *([b[i] for b in boxes] for i in range(4)),
                    ),
                )
                ids = [row[0] for row in cur.fetchall()]
                thumbs = [(uuid.UUID(r.face_id), r.thumbnail) for r in group if r.thumbnail is not None]
                if ids and thumbs:
                    cur.execute(
                        "INSERT INTO gallery_face_thumbnails (face_id, jpeg) SELECT f, j FROM "
                        "unnest(%s::uuid[], %s::bytea[]) AS u(f, j) WHERE f = ANY(%s) ON CONFLICT DO NOTHING",
                        ([t[0] for t in thumbs], [t[1] for t in thumbs], ids),
                    )
                if ids:
                    added.append((key, name, ids))
                    if context is not None:
                        at = datetime.fromisoformat(group[0].created_at)
                        self._record_enrollment(cur, uid, name, [face_hex(i) for i in ids], at, context)
            if not added:
                return None, None
            if len(added) == 1:
                key, name, ids = added[0]
                return None, ("add", key, name, ids)
            # One log entry per write: the payload lists every face; the replica re-reads them
            # with their identities, so the entry's name is informative only.
            return None, ("add", added[0][0], added[0][1], [i for _, _, ids in added for i in ids])

        self._write(work)

    def delete_identity(self, identity: str) -> int:
        key = name_key(identity)
        context = current()
        expired_before = None if context is None else context.expired_before

        # Faces first (to count and log them), then the identity, in one transaction. An expiry
        # erase only takes an identity still expired now, under the write lock: of several
        # replicas' sweepers, one erases it and the others find nothing.
        def work_counted(cur: psycopg.Cursor) -> tuple[int, tuple | None]:
            cur.execute(
                "SELECT id, name, uid FROM gallery_identities WHERE name_key = %s "
                "AND (%s::timestamptz IS NULL OR expires_at <= %s::timestamptz) FOR UPDATE",
                (key, expired_before, expired_before),
            )
            row = cur.fetchone()
            if row is None:
                return -1, None
            cur.execute("DELETE FROM gallery_faces WHERE identity_id = %s RETURNING face_id", (row[0],))
            face_ids = [r[0] for r in cur.fetchall()]
            cur.execute("DELETE FROM gallery_identities WHERE id = %s", (row[0],))
            action = "expire" if expired_before is not None else "delete_identity"
            self._erased(cur, row[2], row[1], [face_hex(f) for f in face_ids], action, context)
            return len(face_ids), ("delete_identity", key, row[1], face_ids)

        return self._write(work_counted)

    def delete_face(self, identity: str, face_id: str) -> bool:
        if not _HEX_ID.match(face_id):
            return False
        key = name_key(identity)
        context = current()

        def work(cur: psycopg.Cursor) -> tuple[bool, tuple | None]:
            cur.execute(
                "DELETE FROM gallery_faces f USING gallery_identities i "
                "WHERE f.identity_id = i.id AND i.name_key = %s AND f.face_id = %s RETURNING i.id, i.name, i.uid",
                (key, uuid.UUID(face_id)),
            )
            row = cur.fetchone()
            if row is None:
                return False, None
            cur.execute(
                "DELETE FROM gallery_identities i WHERE i.id = %s "
                "AND NOT EXISTS (SELECT 1 FROM gallery_faces f WHERE f.identity_id = i.id)",
                (row[0],),
            )
            if cur.rowcount:
                self._erased(cur, row[2], row[1], [face_id], "delete_face", context)
            elif context is not None:
                self._append_audit(cur, "delete_face", row[2], row[1], [face_id], context)
            return True, ("delete_face", key, row[1], [uuid.UUID(face_id)])

        return self._write(work)

    def thumbnail(self, identity: str, face_id: str) -> bytes | None:
        if not _HEX_ID.match(face_id):
            return None
        with self._cursor(transaction=False) as cur:
            cur.execute(
                "SELECT t.jpeg FROM gallery_face_thumbnails t JOIN gallery_faces f ON f.face_id = t.face_id "
                "JOIN gallery_identities i ON i.id = f.identity_id WHERE i.name_key = %s AND t.face_id = %s",
                (name_key(identity), uuid.UUID(face_id)),
            )
            row = cur.fetchone()
        return None if row is None else bytes(row[0])

    def close(self) -> None:
        observer, self.observer = self.observer, None
        if observer is not None and hasattr(observer, "stop"):
            observer.stop()
        self._pool.close()


def _row(cur: psycopg.Cursor) -> tuple[Any, ...]:
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("PostgreSQL answered no row where one was due")
    return tuple(row)
