"""Starting a gallery from its snapshot, and keeping the snapshot fresh in the background.

A start that reads ten million faces back from the store takes minutes (and the IVF as long
again to build); from the snapshot it reads a few files' worth of arrays. The snapshot holds the
index's live faces column by column, the identity names, the IVF and the faces by identity, and
the store position they reflect:

* SQLite (snapshot beside the file, ``<gallery>.snapshot``): the largest ``faces`` rowid, the
  face id at it and the store's ``deleted_faces`` counter (``meta``, counted by every deletion's
  transaction). If the counter and that face are unchanged, no face the snapshot holds was
  deleted since and every later face has a larger rowid: they are read and added, in a few index
  lookups. Otherwise (a crash after deletions) the face ids are compared and the difference
  applied; a store that shares less than half of the snapshot's faces (another file, an old
  backup) is reloaded whole.
* PostgreSQL (a folder per replica, ``FACE_SNAPSHOT_DIR``): the change-log ``seq``; the replica
  sync catches up from it, and reloads when the log was trimmed past it.

A snapshot of another embedder, dimension, store or format version, or a damaged one, is
rebuilt from the store with a warning, never served. The writer thread rewrites it every
``interval_s`` after a change, within seconds after an erasure (the old file held the erased
person's vectors), and on close; each write streams the blocks to a new file replacing the old.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import ann_search, snapshot
from .ann import IvfIndex
from .blocks import Block, Columns
from .errors import GalleryMismatchError
from .index import FaceIndex
from .memory_store import MemoryStore
from .snapshot import SnapshotError
from .sqlite_store import SQLiteStore
from .store import FaceRecord, GalleryStore

if TYPE_CHECKING:
    from .gallery import Gallery

log = logging.getLogger(__name__)

FORMAT = 1
# Galleries smaller than this load from the store in well under a second: no snapshot file.
MIN_FACES = 50_000
INTERVAL_S = 300.0
ERASURE_DELAY_S = 2.0  # an erasure's rewrite waits this long so that a burst of deletes is one write
COLUMNS = ("vectors", "identity", "labels", "face_ids", "created_at", "boxes")


def snapshot_path(store: GalleryStore, folder: str | Path | None) -> Path | None:
    """Where ``store``'s snapshot lives: beside a SQLite file (or in ``folder``), in ``folder``
    for PostgreSQL, nowhere for a memory store or an unset PostgreSQL folder."""
    if isinstance(store, MemoryStore):
        return None
    if isinstance(store, SQLiteStore):
        if str(store.path) == ":memory:":
            return None
        name = store.path.name + ".snapshot"
        return Path(folder) / name if folder else store.path.with_name(name)
    return Path(folder) / "gallery.snapshot" if folder else None


def _store_id(store: GalleryStore) -> str:
    if isinstance(store, SQLiteStore):
        return "sqlite"
    return f"postgresql {getattr(store, 'where', '')}"


# -- loading ----------------------------------------------------------------------------------
def load_index(store: GalleryStore, embedder: str, dim: int, kind: str, path: Path | None) -> tuple[FaceIndex, bool]:
    """The index of ``store``: from the snapshot at ``path`` brought up to date when it is usable,
    else read from the store. The flag says whether the snapshot was used."""
    if path is not None:
        snapshot.remove_partials(path)
        if path.exists():
            started = time.perf_counter()
            try:
                index = _from_snapshot(store, embedder, dim, kind, path)
                log.info(
                    "gallery snapshot %s: %d faces loaded in %.1f s",
                    path,
                    index.stats()["faces"],
                    time.perf_counter() - started,
                )
                return index, True
            except SnapshotError as exc:
                log.warning("gallery snapshot %s not used: %s; rebuilding from the store", path, exc)
    table = store.load_table(dim)
    if len(table.face_ids) and table.embeddings.shape[1] != dim:
        raise GalleryMismatchError(f"gallery holds {table.embeddings.shape[1]}-d vectors; {embedder} makes {dim}-d")
    return FaceIndex.from_table(table, dim, embedder, kind), False


def _from_snapshot(store: GalleryStore, embedder: str, dim: int, kind: str, path: Path) -> FaceIndex:
    meta, arrays = snapshot.read(path)
    if meta.get("format") != FORMAT:
        raise SnapshotError(f"format {meta.get('format')}, this service writes {FORMAT}")
    if meta.get("embedder") != embedder or meta.get("dim") != dim:
        raise SnapshotError(f"made for {meta.get('embedder')} ({meta.get('dim')}-d), the gallery uses {embedder}")
    if meta.get("store") != _store_id(store):
        raise SnapshotError(f"made for another store ({meta.get('store')})")
    try:
        columns = Columns(*(arrays[name] for name in COLUMNS))
        approx = None
        if "ivf" in arrays and kind != "exact":
            ivf = IvfIndex.deserialize(arrays["ivf"], int(meta["trained_on"]))
            by_identity = ann_search.FacesByIdentity.grouped(arrays["by_identity"], arrays["by_identity_starts"])
            approx = ann_search.Approximate(ivf, by_identity)
        keys = {str(k): int(v) for k, v in meta["keys"].items()} if "keys" in meta else None
        index = FaceIndex.restore(dim, embedder, kind, meta["names"], columns, int(meta["next_label"]), approx, keys)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise SnapshotError(f"inconsistent ({exc})") from exc
    position = meta["position"]
    if isinstance(store, SQLiteStore):
        _sqlite_catch_up(store, index, columns, position, path)
    else:
        store.loaded_seq = int(position["seq"])  # type: ignore[attr-defined]  # the replica sync catches up
    return index


# -- SQLite: the store's position and what changed after it -----------------------------------
def _read_only(store: SQLiteStore) -> sqlite3.Connection:
    uri = "file:" + urllib.parse.quote(str(store.path.resolve())) + "?mode=ro"
    return sqlite3.connect(uri, uri=True, check_same_thread=False)


def _position(db: sqlite3.Connection) -> dict[str, Any]:
    """The store's position: index lookups only (a ``count(*)`` would read a 10M-face file)."""
    last = db.execute("SELECT max(rowid) FROM faces").fetchone()[0]
    face = db.execute("SELECT face_id FROM faces WHERE rowid = ?", (last,)).fetchone() if last else None
    deleted = db.execute("SELECT value FROM meta WHERE key = 'deleted_faces'").fetchone()
    return {"rowid": int(last or 0), "face_id": face[0] if face else None, "deleted": int(deleted[0]) if deleted else 0}


def sqlite_position(store: SQLiteStore) -> dict[str, Any]:
    db = _read_only(store)
    try:
        db.execute("BEGIN")
        position = _position(db)
        db.execute("COMMIT")
    finally:
        db.close()
    return position


def _records(rows: list[tuple], embedder: str) -> list[FaceRecord]:
    return [
        FaceRecord(
            face_id=face_id,
            identity=identity,
            embedding=np.frombuffer(blob, dtype="<f4").astype(np.float32),
            embedder=embedder,
            created_at=created,
            box=None if box[0] is None else (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
        )
        for face_id, identity, blob, created, *box in rows
    ]


_FACE_COLUMNS = "face_id, identity, embedding, created_at, box_x1, box_y1, box_x2, box_y2"


def _sqlite_catch_up(
    store: SQLiteStore, index: FaceIndex, columns: Columns, position: dict[str, Any], path: Path
) -> None:
    """Apply to ``index`` what the store changed after ``position``."""
    rowid = int(position["rowid"])
    db = _read_only(store)
    try:
        db.execute("BEGIN")  # one read snapshot of the store for all that follows
        at = db.execute("SELECT face_id FROM faces WHERE rowid = ?", (rowid,)).fetchone() if rowid else None
        deleted = _position(db)["deleted"]
        if deleted != int(position["deleted"]) or (at[0] if at else None) != position["face_id"]:
            _apply_difference(db, index, columns, rowid, path)
        later = db.execute(f"SELECT {_FACE_COLUMNS} FROM faces WHERE rowid > ? ORDER BY rowid", (rowid,)).fetchall()
        db.execute("COMMIT")
    finally:
        db.close()
    if later:
        index.add(_records(later, index.embedder))
        log.info("gallery snapshot %s: %d faces added since it was written", path, len(later))


def _apply_difference(db: sqlite3.Connection, index: FaceIndex, columns: Columns, rowid: int, path: Path) -> None:
    """Faces up to ``rowid`` were deleted (or rowids reused) since the snapshot: compare ids."""
    stored = np.array([r[0] for r in db.execute("SELECT face_id FROM faces WHERE rowid <= ?", (rowid,))], dtype="S32")
    held = columns.face_ids
    gone = ~np.isin(held, stored)
    new = stored[~np.isin(stored, held)]
    if 2 * (int(gone.sum()) + len(new)) > max(len(held), 1):
        raise SnapshotError(f"the store shares too few of its {len(held)} faces")
    names = [index.name_of(i) for i in columns.identity[gone].tolist()]
    by_name: dict[str, list[str]] = {}
    for name, face_id in zip(names, columns.face_ids[gone].tolist()):
        by_name.setdefault(name, []).append(face_id.decode())
    for name, face_ids in by_name.items():
        index.remove_faces(name, face_ids)
    if len(new):
        marks = ",".join("?" * len(new))
        rows = db.execute(f"SELECT {_FACE_COLUMNS} FROM faces WHERE face_id IN ({marks})", [f.decode() for f in new])
        index.add(_records(rows.fetchall(), index.embedder))
    log.warning(
        "gallery snapshot %s: %d faces deleted and %d re-numbered since it was written; applied",
        path,
        int(gone.sum()),
        len(new),
    )


# -- writing ----------------------------------------------------------------------------------
def write_snapshot(gallery: Gallery, path: Path) -> int:
    """Capture the gallery (briefly under its write lock) and stream it to ``path``."""
    store = gallery.store
    with gallery.write_lock:
        if isinstance(store, SQLiteStore):
            position: dict[str, Any] = sqlite_position(store)
        else:
            observer = getattr(store, "observer", None)
            position = {"seq": int(getattr(observer, "applied", getattr(store, "loaded_seq", 0)))}
        view, names, keys, next_label, approx, ivf_bytes = gallery.index.capture()
    blocks = [b for b in view.blocks if b.rows]
    live = [ann_search.live_rows(b) if b.dead else None for b in blocks]
    faces = view.faces

    def column(i: int) -> list[np.ndarray]:
        return [b.columns()[i][: b.rows] if rows is None else b.columns()[i][rows] for b, rows in zip(blocks, live)]

    template = Block.empty(0, gallery.dim).columns()  # dtypes and row shapes, blocks or none
    arrays: list[snapshot.Array] = [
        (name, template[i].dtype, (faces, *template[i].shape[1:]), column(i)) for i, name in enumerate(COLUMNS)
    ]
    meta: dict[str, Any] = {
        "format": FORMAT,
        "embedder": gallery.embedder_name,
        "dim": gallery.dim,
        "store": _store_id(store),
        "position": position,
        "names": names,
        "keys": keys,
        "next_label": next_label,
        "written_at": time.time(),
    }
    if approx is not None and ivf_bytes is not None:
        grouped, starts = approx.by_identity.grouped_arrays(len(names))
        arrays += [
            ("ivf", ivf_bytes.dtype, ivf_bytes.shape, [ivf_bytes]),
            ("by_identity", grouped.dtype, grouped.shape, [grouped]),
            ("by_identity_starts", starts.dtype, starts.shape, [starts]),
        ]
        meta["trained_on"] = approx.trained_on
    return snapshot.write(path, meta, arrays)


class SnapshotWriter:
    """Rewrites the gallery's snapshot in a background thread when it changed."""

    def __init__(self, gallery: Gallery, path: Path, interval_s: float = INTERVAL_S, min_faces: int = MIN_FACES):
        self.gallery = gallery
        self.path = path
        self.interval_s = interval_s
        self.min_faces = min_faces
        self.written = 0  # snapshots written by this process (tests and logs)
        self._changed_at: float | None = None
        self._erased_at: float | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="gallery-snapshot", daemon=True)

    def start(self, stale: bool) -> SnapshotWriter:
        if stale:  # loaded from the store: the next start should not have to
            self._changed_at = time.monotonic() - self.interval_s
        self._thread.start()
        return self

    def changed(self, erasure: bool = False) -> None:
        now = time.monotonic()
        if self._changed_at is None:
            self._changed_at = now
        if erasure:
            self._erased_at = self._erased_at or now
            self._wake.set()

    def _due(self) -> float | None:
        """Seconds until the next write is due (0: now), None when nothing changed."""
        if self._changed_at is None:
            return None
        now = time.monotonic()
        due = self._changed_at + self.interval_s - now
        if self._erased_at is not None:
            due = min(due, self._erased_at + ERASURE_DELAY_S - now)
        return max(due, 0.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            due = self._due()
            self._wake.wait(self.interval_s if due is None else min(due, self.interval_s))
            self._wake.clear()
            if not self._stop.is_set() and self._due() == 0 and not self.write_now():
                self._stop.wait(1.0)  # an IVF build in flight, or a failed write: look again shortly

    def write_now(self, closing: bool = False) -> bool:
        """Write if there is something new; returns whether a snapshot was written. Waits while
        an IVF is being built (it is worth having in the file), except when ``closing``."""
        with self._write_lock:
            if self._changed_at is None:
                return False
            if self.gallery.index.building and not closing:
                return False
            if self.gallery.stats()["faces"] < self.min_faces:
                if self._erased_at is not None:
                    self.path.unlink(missing_ok=True)  # too small to keep one, and it held erased faces
                self._changed_at = self._erased_at = None
                return False
            changed_at = self._changed_at
            self._changed_at = self._erased_at = None
            try:
                started = time.perf_counter()
                size = write_snapshot(self.gallery, self.path)
                self.written += 1
                log.info(
                    "gallery snapshot %s: %.0f MB written in %.1f s",
                    self.path,
                    size / 2**20,
                    time.perf_counter() - started,
                )
                return True
            except Exception:
                self._changed_at = changed_at
                log.exception("gallery snapshot %s could not be written; retried later", self.path)
                return False

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        self.write_now(closing=True)
