"""Durable storage of enrolled faces: a small interface and its SQLite implementation.

The in-memory index answers searches; this store is what survives a restart. Keeping it behind
``GalleryStore`` lets a server database replace SQLite without touching search or the API.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from . import sqlite_file
from .audit import AuditEvent, AuditQuery, IdentityTerms, WriteContext, current, now_utc, utc_text
from .errors import GalleryFullError, GalleryOpenError
from .names import identity_key

log = logging.getLogger(__name__)


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
    def from_records(cls, records: Sequence[FaceRecord], dim: int) -> FaceTable:
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
            boxes=np.array([r.box if r.box is not None else (np.nan,) * 4 for r in records], dtype=np.float32).reshape(
                len(records), 4
            ),
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

    # -- people's data: consent, expiry, audit (stores that keep nothing answer empty) ---------
    def identity_terms(self, identity: str) -> IdentityTerms | None:
        """The consent record and expiry of ``identity`` (any case), None when absent."""
        return None

    def all_terms(self) -> dict[str, IdentityTerms]:
        """Every identity's terms by name key (one read, for listings)."""
        return {}

    def restore_terms(self, terms: Sequence[IdentityTerms]) -> None:  # noqa: B027 - optional: a no-op by default
        """Set consent records and expiries copied from another store where this one has none
        (``copy``); identities this store lacks are skipped."""

    def audit_events(self, query: AuditQuery) -> list[AuditEvent]:
        """Audit rows matching ``query``, oldest first, after ``query.after``."""
        return []

    def expired_identities(self, now: datetime) -> list[str]:
        """Names whose ``expires_at`` is at or before ``now``."""
        return []

    def next_expiry(self) -> str | None:
        """The earliest ``expires_at`` of any identity."""
        return None

    def export_identity(self, identity: str, context: WriteContext) -> dict | None:
        """Everything stored about ``identity`` read in one transaction that also records the export."""
        return None


# SQLite's primary result code for "database or disk is full" (the low byte of extended codes).
_SQLITE_FULL = 13


class SQLiteStore(GalleryStore):
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
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF == _SQLITE_FULL:
                    raise GalleryFullError(
                        f"the disk holding gallery {self.path} is full; nothing of this change was stored: "
                        "free space there and retry"
                    ) from exc
                raise
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise GalleryFullError(f"the disk holding gallery {self.path} is full: free space there") from exc
                raise

    def _meta_unlocked(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _meta(self, key: str) -> str | None:
        with self._lock:
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
        with self._lock:
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
                        "INSERT INTO identities(name, name_key, created_at) VALUES (?, ?, ?)",
                        (name, identity_key(name), rec.created_at),
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
            context = current()
            if context is not None:
                self._record_enrollment(records, context)

    def delete_identity(self, identity: str) -> int:
        """``identity`` in any case; -1 when no such identity."""
        context = current()
        with self._transaction():
            name = self._stored_name(identity)
            if name is None:
                return -1
            if context is not None and context.expired_before is not None:
                expires = self._db.execute("SELECT expires_at FROM identities WHERE name = ?", (name,)).fetchone()[0]
                if expires is None or expires > utc_text(context.expired_before):
                    return -1  # re-enrolled (a later expiry) since the sweeper looked
            face_ids = [r[0] for r in self._db.execute("SELECT face_id FROM faces WHERE identity = ?", (name,))]
            count = self._db.execute("DELETE FROM faces WHERE identity = ?", (name,)).rowcount
            self._db.execute("DELETE FROM identities WHERE name = ?", (name,))
            self._count_deleted(count)
            if context is not None:
                action = "expire" if context.expired_before is not None else "delete_identity"
                self._erased(name, face_ids, action, context)
        self._checkpoint()
        return count

    def delete_face(self, identity: str, face_id: str) -> bool:
        with self._transaction():
            name = self._stored_name(identity)
            if name is None:
                return False
            gone = self._db.execute("DELETE FROM faces WHERE identity = ? AND face_id = ?", (name, face_id)).rowcount
            if gone:
                self._count_deleted(gone)
                left = self._db.execute("SELECT COUNT(*) FROM faces WHERE identity = ?", (name,)).fetchone()[0]
                if left == 0:
                    self._db.execute("DELETE FROM identities WHERE name = ?", (name,))
                context = current()
                if context is not None:
                    if left == 0:
                        self._erased(name, [face_id], "delete_face", context)
                    else:
                        self._append_audit("delete_face", name, [face_id], context)
        if gone:
            self._checkpoint()
        return bool(gone)

    def _count_deleted(self, faces: int) -> None:
        """Add to the ``deleted_faces`` counter in ``meta`` (in the deletion's transaction): a
        start-up snapshot compares it with the count it recorded to know, without reading the
        table, whether any face it holds was deleted since (see ``warm_start``)."""
        self._db.execute(
            "INSERT INTO meta(key, value) VALUES ('deleted_faces', ?) ON CONFLICT(key) DO UPDATE SET "
            "value = CAST(CAST(value AS INTEGER) + CAST(excluded.value AS INTEGER) AS TEXT)",
            (str(faces),),
        )

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

    # -- people's data (inside the write transactions above, or their own) ----------------------
    def _append_audit(self, action: str, name: str | None, face_ids: Sequence[str], context: WriteContext) -> int:
        cursor = self._db.execute(
            "INSERT INTO audit(at, action, name, name_key, face_ids, key_label, client) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                utc_text(now_utc()),
                action,
                name,
                None if name is None else identity_key(name),
                ",".join(face_ids),
                context.actor.key_label,
                context.actor.client,
            ),
        )
        return int(cursor.lastrowid)

    def _erased(self, name: str, face_ids: Sequence[str], action: str, context: WriteContext) -> None:
        """Audit an erase; with ``forget_names`` the earlier rows lose the person's name."""
        seq = self._append_audit(action, name, face_ids, context)
        if context.forget_names:
            self._db.execute(
                "UPDATE audit SET name = NULL, name_key = NULL WHERE name_key = ? AND seq < ?",
                (identity_key(name), seq),
            )

    def _record_enrollment(self, records: Sequence[FaceRecord], context: WriteContext) -> None:
        name = self._stored_name(records[0].identity)
        at = records[0].created_at
        if context.consent is not None:
            self._db.execute(
                "UPDATE identities SET consent = ?, consent_at = ?, consent_by = ? WHERE name = ?",
                (context.consent, at, context.actor.key_label, name),
            )
        if context.expires_at is not None:
            self._db.execute(
                "UPDATE identities SET expires_at = ? WHERE name = ?", (utc_text(context.expires_at), name)
            )
        self._append_audit("enroll", name, [r.face_id for r in records], context)

    def _terms_unlocked(self, identity: str) -> IdentityTerms | None:
        row = self._db.execute(
            "SELECT name, created_at, consent, consent_at, consent_by, expires_at FROM identities WHERE name_key = ?",
            (identity_key(identity),),
        ).fetchone()
        return IdentityTerms(*row) if row else None

    def identity_terms(self, identity: str) -> IdentityTerms | None:
        with self._lock:
            return self._terms_unlocked(identity)

    def restore_terms(self, terms: Sequence[IdentityTerms]) -> None:
        with self._transaction():
            for t in terms:
                key = identity_key(t.name)
                if t.consent is not None:
                    self._db.execute(
                        "UPDATE identities SET consent = ?, consent_at = ?, consent_by = ? "
                        "WHERE name_key = ? AND consent IS NULL",
                        (t.consent, t.consent_at, t.consent_by, key),
                    )
                if t.expires_at is not None:
                    self._db.execute(
                        "UPDATE identities SET expires_at = ? WHERE name_key = ? AND expires_at IS NULL",
                        (utc_text(datetime.fromisoformat(t.expires_at)), key),
                    )

    def all_terms(self) -> dict[str, IdentityTerms]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name_key, name, created_at, consent, consent_at, consent_by, expires_at FROM identities"
            ).fetchall()
        return {key: IdentityTerms(*rest) for key, *rest in rows}

    def _events_unlocked(self, query: AuditQuery) -> list[AuditEvent]:
        where, args = query.where("?", utc_text)
        rows = self._db.execute(
            "SELECT seq, at, action, name, face_ids, key_label, client FROM audit WHERE "
            + where
            + " ORDER BY seq LIMIT ?",
            (*args, query.limit),
        ).fetchall()
        return [
            AuditEvent(seq, at, action, name, tuple(filter(None, ids.split(","))), label, client)
            for seq, at, action, name, ids, label, client in rows
        ]

    def audit_events(self, query: AuditQuery) -> list[AuditEvent]:
        with self._lock:
            return self._events_unlocked(query)

    def expired_identities(self, now: datetime) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name FROM identities WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at",
                (utc_text(now),),
            ).fetchall()
        return [r[0] for r in rows]

    def next_expiry(self) -> str | None:
        with self._lock:
            return self._db.execute("SELECT min(expires_at) FROM identities").fetchone()[0]

    def export_identity(self, identity: str, context: WriteContext) -> dict | None:
        with self._transaction():
            terms = self._terms_unlocked(identity)
            if terms is None:
                return None
            rows = self._db.execute(
                "SELECT face_id, embedding, dim, created_at, box_x1, box_y1, box_x2, box_y2 FROM faces "
                "WHERE identity = ? ORDER BY rowid",
                (terms.name,),
            ).fetchall()
            faces = [
                {
                    "face_id": face_id,
                    "box": None if box[0] is None else list(box),
                    "created_at": created_at,
                    "embedding": np.frombuffer(blob, dtype="<f4", count=dim).astype(float).tolist(),
                }
                for face_id, blob, dim, created_at, *box in rows
            ]
            self._append_audit("export", terms.name, [f["face_id"] for f in faces], context)
            events = self._events_unlocked(AuditQuery(identity=terms.name, limit=1_000_000))
        return export_document(terms, faces, events)


def export_document(terms: IdentityTerms, faces: list[dict], events: Sequence[AuditEvent]) -> dict:
    """The export's one JSON shape, whichever store it came from."""
    return {
        "name": terms.name,
        "enrolled_at": terms.created_at,
        "consent": terms.consent_json(),
        "expires_at": terms.expires_at,
        "faces": faces,
        "audit": [event.as_json() for event in events],
    }


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


def stored_embedder(path: str | Path) -> str | None:
    """The embedder an existing gallery file was written with (None if absent or empty).

    Reads through a read-only connection and writes nothing; a file that is not a gallery
    raises ``GalleryOpenError`` (``auto`` must not guess an embedder from a foreign file).
    """
    path = Path(path)
    sqlite_file.check_location(path)
    found = sqlite_file.identify(path, thorough=False)
    return found.embedder if found else None


def check_gallery_file(path: str | Path, embedder_name: str | None = None) -> str | None:
    """Every check the store makes before its first write, without writing: the start-up runs it
    before loading any model so a bad ``FACE_GALLERY`` fails in a second with one line.
    Returns the stored embedder (None for a new or empty gallery)."""
    found = sqlite_file.open_checks(Path(path), embedder_name)
    return found.embedder if found else None


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
        key = identity_key(identity)
        with self._lock:
            before = len(self._records)
            self._records = [r for r in self._records if identity_key(r.identity) != key]
            gone = before - len(self._records)
        return gone if gone else -1

    def delete_face(self, identity: str, face_id: str) -> bool:
        key = identity_key(identity)
        with self._lock:
            before = len(self._records)
            self._records = [r for r in self._records if not (identity_key(r.identity) == key and r.face_id == face_id)]
            return len(self._records) < before

    def close(self) -> None:
        pass
