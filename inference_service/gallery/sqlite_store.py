"""The gallery in one SQLite file: the embedded store of a single API process.

The file's shape, checks and upgrades are ``sqlite_file``'s; the people's data (consent, expiry,
audit, export) is ``sqlite_people``'s. sqlite3 exceptions stay inside these modules: a full disk
is ``GalleryFullError``, anything else a ``GalleryError`` naming the file.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from . import sqlite_file
from .audit import current, utc_text
from .errors import GalleryError, GalleryFullError, GalleryOpenError, GalleryUnavailableError
from .names import identity_key
from .sqlite_curation import SQLiteCuration
from .store import FaceRecord, FaceTable, GalleryStore

log = logging.getLogger(__name__)

# SQLite's primary result code for "database or disk is full" (the low byte of extended codes).
_SQLITE_FULL = 13


class SQLiteStore(SQLiteCuration, GalleryStore):
    """SQLite in WAL mode. ``secure_delete`` overwrites deleted rows so an erased person's
    embeddings do not linger in free pages of the file.

    An existing file is identified read-only before anything writes to it (see
    ``sqlite_file``): another program's database, a damaged file or another embedder's gallery
    is refused with a ``GalleryOpenError`` and left byte for byte as it was.
    """

    def __init__(self, path: str | Path, embedder_name: str | None = None, dim: int | None = None) -> None:
        self.path = Path(path)
        in_memory = str(path) == ":memory:"
        found = None
        if not in_memory:
            found = sqlite_file.open_checks(self.path, embedder_name)
            if found is None:
                sqlite_file.create(self.path, embedder_name, dim)
                found = sqlite_file.open_checks(self.path, embedder_name)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA secure_delete=ON")
            with self._transaction():
                if found is None:  # ":memory:"
                    sqlite_file.build(self._db, self.path)
                else:
                    sqlite_file.upgrade(self._db, self.path, found.schema_version)
                if embedder_name is not None and self._meta_unlocked("embedder") is None:
                    self._set_meta("embedder", embedder_name)
                    if dim is not None:
                        self._set_meta("dim", str(dim))
        except GalleryFullError:
            raise
        except sqlite3.Error as exc:
            raise GalleryOpenError(
                f"cannot open gallery {self.path} ({exc}); check FACE_GALLERY, the file and its folder"
            ) from exc

    # -- helpers ------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction under the store's lock: committed, or rolled back on error.

        A full disk becomes ``GalleryFullError`` after the rollback, so the caller's in-memory
        state (never updated before the store succeeds) and the file both stay as they were.
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield
                    self._db.execute("COMMIT")
                except BaseException:
                    # SQLite may have rolled back already (it does on a full disk).
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF == _SQLITE_FULL:
                    raise GalleryFullError(
                        f"the disk holding gallery {self.path} is full; nothing of this change was stored: "
                        "free space there and retry"
                    ) from exc
                raise self._failed(exc) from exc
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise GalleryFullError(f"the disk holding gallery {self.path} is full: free space there") from exc
                raise

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Reads under the store's lock, a driver failure turned into a ``GalleryError``."""
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise self._failed(exc) from exc

    def _failed(self, exc: sqlite3.Error) -> GalleryError:
        busy = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
        kind = GalleryUnavailableError if busy else GalleryError
        return kind(f"gallery {self.path}: {' '.join(str(exc).split())}")

    def _meta_unlocked(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _meta(self, key: str) -> str | None:
        with self._reading():
            return self._meta_unlocked(key)

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def _stored_name(self, identity: str) -> str | None:
        """The spelling an identity was first stored with, found by its key (in a transaction)."""
        row = self._db.execute("SELECT name FROM identities WHERE name_key = ?", (identity_key(identity),)).fetchone()
        return row[0] if row else None

    # -- interface ----------------------------------------------------------------------------
    def embedder(self) -> str | None:
        return self._meta("embedder")

    def load_all(self) -> list[FaceRecord]:
        with self._reading():
            rows = self._db.execute(
                "SELECT face_id, identity, embedding, dim, embedder, created_at, box_x1, box_y1, box_x2, box_y2 "
                "FROM faces ORDER BY identity, rowid"
            ).fetchall()
        records = []
        for face_id, identity, blob, dim, embedder, created_at, *box in rows:
            vector = np.frombuffer(blob, dtype="<f4", count=dim).astype(np.float32)
            records.append(
                FaceRecord(face_id, identity, vector, embedder, created_at, None if box[0] is None else tuple(box))
            )
        return records

    def load_table(self, dim: int) -> FaceTable:
        """Every face in insertion order, a slice of rows at a time into preallocated arrays.

        A million faces must load in a couple of seconds: each column goes into numpy in bulk
        (times as bytes parsed by numpy, names factorised by dicts at C speed), and no Python
        object per face outlives its slice of rows.
        """
        with self._reading():
            self._db.execute("BEGIN")  # one snapshot for the count and the rows
            try:
                # One embedder per file (checked at open), so the first face's width is every face's.
                first = self._db.execute("SELECT dim FROM faces ORDER BY rowid LIMIT 1").fetchone()
                width = first[0] if first else dim
                n = self._db.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
                face_ids = np.empty(n, "S32")
                embeddings = np.empty((n, width), "<f4")
                stamps = np.empty(n, "S40")
                boxes = np.empty((n, 4), np.float32)
                identities: list[str] = []
                cursor = self._db.execute(
                    # an unknown box as +inf (only floats: numpy converts them in bulk), NaN below
                    "SELECT CAST(face_id AS BLOB), identity, embedding, CAST(created_at AS BLOB), "
                    "IFNULL(box_x1, 9e999), IFNULL(box_y1, 9e999), IFNULL(box_x2, 9e999), IFNULL(box_y2, 9e999) "
                    "FROM faces ORDER BY rowid"
                )
                # numpy converts a slice of rows into these fields in one pass (each vector's bytes
                # as one ``dim``-float field), then each field is copied into its column
                corners = ("x1", "y1", "x2", "y2")
                row = np.dtype(
                    [
                        ("face_id", "S32"),
                        ("identity", "O"),
                        ("vector", f"S{4 * width}"),
                        ("created_at", "S40"),
                        *((c, "<f4") for c in corners),
                    ]
                )
                done = 0
                while rows := cursor.fetchmany(65536):
                    part = slice(done, done + len(rows))
                    chunk = np.array(rows, dtype=row)
                    face_ids[part] = chunk["face_id"]
                    embeddings[part].view(f"S{4 * width}")[:, 0] = chunk["vector"]
                    stamps[part] = chunk["created_at"]
                    for i, corner in enumerate(corners):
                        boxes[part, i] = chunk[corner]
                    identities.extend(chunk["identity"].tolist())
                    done += len(rows)
            finally:
                self._db.execute("COMMIT")
        boxes[np.isinf(boxes).any(axis=1)] = np.nan
        first_seen = list(dict.fromkeys(identities))
        number = {name: i for i, name in enumerate(first_seen)}
        return FaceTable(
            face_ids=face_ids,
            identity=np.fromiter(map(number.__getitem__, identities), np.int32, n),
            names=first_seen,
            embeddings=embeddings,
            created_at=_utc_micros(stamps),
            boxes=boxes,
        )

    def add_faces(self, records: Sequence[FaceRecord]) -> None:
        """Faces of an identity that exists under another spelling (``obama`` for ``Obama``) join
        it; the first spelling stays the identity's name."""
        if not records:
            return
        with self._transaction():
            if self._meta_unlocked("embedder") is None:
                self._set_meta("embedder", records[0].embedder)
                self._set_meta("dim", str(len(records[0].embedding)))
            for rec in records:
                name = self._stored_name(rec.identity)
                if name is None:
                    name = rec.identity
                    self._db.execute(
                        "INSERT INTO identities(name, name_key, created_at, uid) VALUES (?, ?, ?, ?)",
                        (name, identity_key(name), rec.created_at, uuid.uuid4().hex),
                    )
                box = rec.box if rec.box is not None else (None, None, None, None)
                self._db.execute(
                    "INSERT INTO faces(face_id, identity, embedding, dim, embedder, created_at, "
                    "box_x1, box_y1, box_x2, box_y2) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        rec.face_id,
                        name,
                        np.asarray(rec.embedding, dtype="<f4").tobytes(),
                        len(rec.embedding),
                        rec.embedder,
                        rec.created_at,
                        *box,
                    ),
                )
                if rec.thumbnail is not None:
                    self._db.execute(
                        "INSERT INTO face_thumbnails(face_id, jpeg) VALUES (?, ?)", (rec.face_id, rec.thumbnail)
                    )
            context = current()
            if context is not None:
                uid, name = self._identity(records[0].identity)
                ids = [r.face_id for r in records]
                self._record_enrollment(self._db, uid, name, ids, records[0].created_at, context)

    def _identity(self, identity: str) -> tuple[str, str]:
        """(uid, stored name) of an identity that exists (in a transaction)."""
        row = self._db.execute(
            "SELECT uid, name FROM identities WHERE name_key = ?", (identity_key(identity),)
        ).fetchone()
        return row[0], row[1]

    def delete_identity(self, identity: str) -> int:
        """``identity`` in any case; -1 when no such identity."""
        context = current()
        with self._transaction():
            name = self._stored_name(identity)
            if name is None:
                return -1
            uid, expires = self._db.execute("SELECT uid, expires_at FROM identities WHERE name = ?", (name,)).fetchone()
            if context is not None and context.expired_before is not None:
                if expires is None or expires > utc_text(context.expired_before):
                    return -1  # re-enrolled (a later expiry) since the sweeper looked
            face_ids = [r[0] for r in self._db.execute("SELECT face_id FROM faces WHERE identity = ?", (name,))]
            count = self._db.execute("DELETE FROM faces WHERE identity = ?", (name,)).rowcount
            self._count_deleted(self._db, count)
            self._db.execute("DELETE FROM identities WHERE name = ?", (name,))
            action = "expire" if context is not None and context.expired_before is not None else "delete_identity"
            self._erased(self._db, uid, name, face_ids, action, context)
        self._checkpoint()
        return count

    def delete_face(self, identity: str, face_id: str) -> bool:
        context = current()
        with self._transaction():
            name = self._stored_name(identity)
            if name is None:
                return False
            gone = self._db.execute("DELETE FROM faces WHERE identity = ? AND face_id = ?", (name, face_id)).rowcount
            if gone:
                self._count_deleted(self._db, gone)
                uid = self._db.execute("SELECT uid FROM identities WHERE name = ?", (name,)).fetchone()[0]
                left = self._db.execute("SELECT COUNT(*) FROM faces WHERE identity = ?", (name,)).fetchone()[0]
                if left == 0:
                    self._db.execute("DELETE FROM identities WHERE name = ?", (name,))
                    self._erased(self._db, uid, name, [face_id], "delete_face", context)
                elif context is not None:
                    self._append_audit(self._db, "delete_face", uid, name, [face_id], context)
        if gone:
            self._checkpoint()
        return bool(gone)

    def thumbnail(self, identity: str, face_id: str) -> bytes | None:
        with self._reading():
            row = self._db.execute(
                "SELECT t.jpeg FROM face_thumbnails t JOIN faces f ON f.face_id = t.face_id "
                "JOIN identities i ON i.name = f.identity WHERE i.name_key = ? AND t.face_id = ?",
                (identity_key(identity), face_id),
            ).fetchone()
        return None if row is None else bytes(row[0])

    def _checkpoint(self) -> None:
        """Fold the WAL into the main file and truncate it, so deleted rows leave no copy there.

        The deletion is committed already; a checkpoint that fails (a full disk) is retried by
        SQLite's automatic checkpoints and the next deletion, so it is logged, not raised.
        """
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.warning("gallery %s: WAL checkpoint after a deletion failed (%s); retried later", self.path, exc)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _utc_micros(stamps: np.ndarray) -> np.ndarray:
    """ISO-8601 times (bytes) as naive-UTC datetime64[us]. What ``Gallery.enroll`` writes
    (``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``) is parsed by numpy in bulk; anything else one by one."""
    raw = stamps.view(np.uint8).reshape(len(stamps), stamps.itemsize)
    ours = (raw[:, 19] == ord(".")) & (raw[:, 26:32] == np.frombuffer(b"+00:00", np.uint8)).all(axis=1)
    ours &= raw[:, 32:].max(axis=1, initial=0) == 0
    out = np.empty(len(stamps), "datetime64[us]")
    out[ours] = stamps[ours].astype("S26").astype("datetime64[us]")
    for row in np.flatnonzero(~ours):
        moment = datetime.fromisoformat(stamps[row].decode())
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        out[row] = np.datetime64(moment, "us")
    return out
