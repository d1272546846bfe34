"""Durable storage of enrolled faces: a small interface and its SQLite implementation.

The in-memory index answers searches; this store is what survives a restart. Keeping it behind
``GalleryStore`` lets a server database replace SQLite without touching search or the API.
"""
from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .errors import GalleryMismatchError


@dataclass(frozen=True)
class FaceRecord:
    """One enrolled face. ``box`` is where it was found in the (discarded) source image."""

    face_id: str
    identity: str
    embedding: np.ndarray
    embedder: str
    created_at: str
    box: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class FaceTable:
    """Every stored face column by column: what a gallery loads at start-up.

    A million faces as a million ``FaceRecord`` objects cost seconds and several times the
    vectors' own memory; as a few arrays they load in one pass and cost little beyond the vectors.
    """

    face_ids: np.ndarray  # (n,) "S32": the uuid hex of each face
    identity: np.ndarray  # (n,) int32: index into ``names``
    names: list[str]  # display name of each identity (first spelling enrolled)
    embeddings: np.ndarray  # (n, dim) float32, unit rows
    created_at: np.ndarray  # (n,) datetime64[us], UTC
    boxes: np.ndarray  # (n, 4) float32; NaN where the box is unknown

    @classmethod
    def from_records(cls, records: Sequence[FaceRecord], dim: int) -> "FaceTable":
        names: dict[str, int] = {}
        identity = np.fromiter((names.setdefault(r.identity, len(names)) for r in records), np.int32, len(records))
        return cls(
            face_ids=np.array([r.face_id for r in records], dtype="S32").reshape(len(records)),
            identity=identity,
            names=list(names),
            embeddings=(
                np.stack([np.asarray(r.embedding, np.float32) for r in records])
                if records
                else np.zeros((0, dim), np.float32)
            ),
            created_at=np.array(
                [np.datetime64(r.created_at.replace("+00:00", ""), "us") for r in records], dtype="datetime64[us]"
            ).reshape(len(records)),
            boxes=np.array(
                [r.box if r.box is not None else (np.nan,) * 4 for r in records], dtype=np.float32
            ).reshape(len(records), 4),
        )


class GalleryStore(ABC):
    """What the gallery needs from persistent storage. Each call is atomic."""

    @abstractmethod
    def embedder(self) -> str | None:
        """The embedder whose vectors this store holds, or None while it is empty."""

    @abstractmethod
    def load_all(self) -> list[FaceRecord]:
        """Every face, ordered by identity, then in the order it was added."""

    def load_table(self, dim: int) -> FaceTable:
        """Every face as columns (stores override this with a bulk read)."""
        return FaceTable.from_records(self.load_all(), dim)

    @abstractmethod
    def add_faces(self, records: Sequence[FaceRecord]) -> None:
        """Store all records or none of them."""

    @abstractmethod
    def delete_identity(self, identity: str) -> int:
        """Remove an identity and all its faces for good; returns how many faces went."""

    @abstractmethod
    def delete_face(self, identity: str, face_id: str) -> bool:
        """Remove one face; drops the identity when it was its last face."""

    @abstractmethod
    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS identities (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS faces (
    face_id TEXT PRIMARY KEY,
    identity TEXT NOT NULL REFERENCES identities(name) ON DELETE CASCADE,
    embedding BLOB NOT NULL,
    dim INTEGER NOT NULL,
    embedder TEXT NOT NULL,
    created_at TEXT NOT NULL,
    box_x1 REAL, box_y1 REAL, box_x2 REAL, box_y2 REAL
);
CREATE INDEX IF NOT EXISTS faces_by_identity ON faces(identity, created_at);
"""


class SQLiteStore(GalleryStore):
    """SQLite in WAL mode. ``secure_delete`` overwrites deleted rows so an erased person's
    embeddings do not linger in free pages of the file."""

    def __init__(self, path: str | Path, embedder_name: str | None = None, dim: int | None = None) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA secure_delete=ON")
        with self._lock:
            self._db.executescript(_SCHEMA)
        stored = self.embedder()
        if embedder_name is not None:
            if stored is not None and stored != embedder_name:
                stored_dim = self._meta("dim")
                raise GalleryMismatchError(
                    f"gallery {self.path} holds {stored} embeddings ({stored_dim}-d) but the service "
                    f"uses {embedder_name}; vectors of different models cannot be compared. Use "
                    f"FACE_EMBEDDER={stored}, or point FACE_GALLERY at another file."
                )
            if stored is None:
                with self._transaction():
                    self._set_meta("embedder", embedder_name)
                    if dim is not None:
                        self._set_meta("dim", str(dim))

    # -- helpers ------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction under the store's lock: committed, or rolled back on error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- interface ----------------------------------------------------------------------------
    def embedder(self) -> str | None:
        return self._meta("embedder")

    def load_all(self) -> list[FaceRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT face_id, identity, embedding, dim, embedder, created_at, box_x1, box_y1, box_x2, box_y2 "
                "FROM faces ORDER BY identity, rowid"
            ).fetchall()
        records = []
        for face_id, identity, blob, dim, embedder, created_at, *box in rows:
            vector = np.frombuffer(blob, dtype="<f4", count=dim).astype(np.float32)
            records.append(
                FaceRecord(
                    face_id, identity, vector, embedder, created_at, None if box[0] is None else tuple(box)
                )
            )
        return records

    def load_table(self, dim: int) -> FaceTable:
        """Every face in insertion order, a slice of rows at a time into preallocated arrays.

        A million faces must load in a couple of seconds: each column goes into numpy in bulk
        (times as bytes parsed by numpy, names factorised by dicts at C speed), and no Python
        object per face outlives its slice of rows.
        """
        with self._lock:
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
                row = np.dtype([("face_id", "S32"), ("identity", "O"), ("vector", f"S{4 * width}"),
                                ("created_at", "S40"), *((c, "<f4") for c in corners)])
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
        if not records:
            return
        with self._transaction():
            if self._db.execute("SELECT value FROM meta WHERE key='embedder'").fetchone() is None:
                self._set_meta("embedder", records[0].embedder)
                self._set_meta("dim", str(len(records[0].embedding)))
            for rec in records:
                self._db.execute(
                    "INSERT OR IGNORE INTO identities(name, created_at) VALUES (?, ?)", (rec.identity, rec.created_at)
                )
                box = rec.box if rec.box is not None else (None, None, None, None)
                self._db.execute(
                    "INSERT INTO faces(face_id, identity, embedding, dim, embedder, created_at, "
                    "box_x1, box_y1, box_x2, box_y2) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        rec.face_id,
                        rec.identity,
                        np.asarray(rec.embedding, dtype="<f4").tobytes(),
                        len(rec.embedding),
                        rec.embedder,
                        rec.created_at,
                        *box,
                    ),
                )

    def delete_identity(self, identity: str) -> int:
        with self._transaction():
            count = self._db.execute("SELECT COUNT(*) FROM faces WHERE identity = ?", (identity,)).fetchone()[0]
            self._db.execute("DELETE FROM faces WHERE identity = ?", (identity,))
            gone = self._db.execute("DELETE FROM identities WHERE name = ?", (identity,)).rowcount
        if gone:
            self._checkpoint()
        return count if gone else -1

    def delete_face(self, identity: str, face_id: str) -> bool:
        with self._transaction():
            gone = self._db.execute(
                "DELETE FROM faces WHERE identity = ? AND face_id = ?", (identity, face_id)
            ).rowcount
            if gone:
                left = self._db.execute("SELECT COUNT(*) FROM faces WHERE identity = ?", (identity,)).fetchone()[0]
                if left == 0:
                    self._db.execute("DELETE FROM identities WHERE name = ?", (identity,))
        if gone:
            self._checkpoint()
        return bool(gone)

    def _checkpoint(self) -> None:
        """Fold the WAL into the main file and truncate it, so deleted rows leave no copy there."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

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
            moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
        out[row] = np.datetime64(moment, "us")
    return out


def stored_embedder(path: str | Path) -> str | None:
    """The embedder an existing gallery file was written with (None if absent or empty)."""
    path = Path(path)
    if not path.is_file():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'embedder'").fetchone()
    except sqlite3.DatabaseError:
        return None
    finally:
        db.close()
    return row[0] if row else None


class MemoryStore(GalleryStore):
    """A store that keeps nothing after the process: for tests, benchmarks and dry runs."""

    def __init__(self) -> None:
        self._records: list[FaceRecord] = []
        self._lock = threading.Lock()

    def embedder(self) -> str | None:
        return self._records[0].embedder if self._records else None

    def load_all(self) -> list[FaceRecord]:
        with self._lock:
            return sorted(self._records, key=lambda r: r.identity)

    def load_table(self, dim: int) -> FaceTable:
        with self._lock:
            records = list(self._records)  # in the order added; no sort needed for the index
        return FaceTable.from_records(records, dim)

    def add_faces(self, records: Sequence[FaceRecord]) -> None:
        with self._lock:
            self._records.extend(records)

    def delete_identity(self, identity: str) -> int:
        with self._lock:
            before = len(self._records)
            self._records = [r for r in self._records if r.identity != identity]
            gone = before - len(self._records)
        return gone if gone else -1

    def delete_face(self, identity: str, face_id: str) -> bool:
        with self._lock:
            before = len(self._records)
            self._records = [r for r in self._records if not (r.identity == identity and r.face_id == face_id)]
            return len(self._records) < before

    def close(self) -> None:
        pass
