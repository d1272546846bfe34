"""The gallery: enrolled identities searched in memory, persisted through a ``GalleryStore``.

Search reads the incremental ``FaceIndex`` (see index.py) without a lock and never sees half an
update. Writers commit to the store first, then apply the same change to the index under the
write lock, so memory never holds what the store refused. Changes made elsewhere (another
replica's writes on a shared store) reach memory through the ``apply_*`` methods.
Identities are compared by ``name_key``: ``Obama`` and ``obama`` are one person, shown in the
spelling first enrolled. A large gallery starts from its snapshot (see warm_start.py) and
searches through an approximate index (``index`` = ``auto`` | ``exact`` | ``ivf``, see index.py).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from . import warm_start
from .factory import open_store
from .index import FaceIndex
from .index_moves import reassign
from .names import validate_name
from .store import FaceRecord, GalleryStore


@dataclass(frozen=True)
class Candidate:
    identity: str
    similarity: float


@dataclass(frozen=True)
class Recognition:
    """The answer for one face: ``identity`` is None ("unknown") below the threshold."""

    identity: str | None
    similarity: float
    candidates: list[Candidate]


class Gallery:
    """Thread-safe enrolled-face gallery for one embedder."""

    def __init__(
        self,
        store: GalleryStore,
        embedder_name: str,
        dim: int,
        index: str = "auto",
        snapshot_dir: str | Path | None = None,
        snapshot_min_faces: int = warm_start.MIN_FACES,
        snapshot_interval_s: float = warm_start.INTERVAL_S,
    ) -> None:
        self.store = store
        self.embedder_name = embedder_name
        self.dim = dim
        # Re-entrant: enroll/delete hold it across the store write and the apply_* that follows.
        self._write_lock = threading.RLock()
        path = warm_start.snapshot_path(store, snapshot_dir)
        self._index, fresh = warm_start.load_index(store, embedder_name, dim, index, path)
        self.from_snapshot = fresh  # whether this start read the snapshot (not the whole store)
        self._snapshots = None
        if path is not None:
            writer = warm_start.SnapshotWriter(self, path, snapshot_interval_s, snapshot_min_faces)
            self._snapshots = writer.start(stale=not fresh)

    @classmethod
    def open(
        cls, path: str | Path, embedder_name: str, dim: int, index: str = "auto", snapshot_dir: str | Path | None = None
    ) -> Gallery:
        """Open (or create) the gallery a path or URL names; refuses one written by another embedder."""
        return cls(open_store(path, embedder_name, dim), embedder_name, dim, index, snapshot_dir)

    @property
    def index(self) -> FaceIndex:
        return self._index

    @property
    def snapshots(self) -> warm_start.SnapshotWriter | None:
        return self._snapshots

    # -- reads --------------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        return self._index.stats()

    def identities(self) -> list[tuple[str, int]]:
        """(display name, faces) of every identity, sorted by name."""
        return self._index.identities()

    def faces_of(self, identity: str) -> list[FaceRecord] | None:
        """An identity's faces in the order they were added (any case of its name), or None."""
        return self._index.faces_of(identity)

    def thumbnail(self, identity: str, face_id: str) -> bytes | None:
        """The JPEG kept of a face at enrollment; None when the face or its thumbnail is absent."""
        return self.store.thumbnail(identity, face_id)

    def search(self, embeddings: np.ndarray, threshold: float, top_k: int = 5) -> list[Recognition]:
        """Best identities for each query vector (rows of ``embeddings``), best first."""
        queries = np.asarray(embeddings, dtype=np.float32).reshape(-1, self.dim)
        out = []
        for found in self._index.search(queries, top_k):
            if not found:
                out.append(Recognition(None, 0.0, []))
                continue
            candidates = [Candidate(name, similarity) for name, similarity in found]
            best = candidates[0]
            out.append(
                Recognition(best.identity if best.similarity >= threshold else None, best.similarity, candidates)
            )
        return out

    # -- writes -------------------------------------------------------------------------------
    def enroll(
        self,
        identity: str,
        embeddings: np.ndarray,
        boxes: Sequence[Sequence[float] | None] | None = None,
        thumbnails: Sequence[bytes | None] | None = None,
    ) -> list[FaceRecord]:
        """Add faces to ``identity`` (created if new; an existing one keeps its first spelling);
        all or nothing. ``thumbnails`` (one JPEG per face) are stored with the faces."""
        identity = validate_name(identity)
        vectors = np.asarray(embeddings, dtype=np.float32).reshape(-1, self.dim)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.maximum(norms, 1e-12)
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        boxes = list(boxes) if boxes is not None else [None] * len(vectors)
        thumbs = list(thumbnails) if thumbnails is not None else [None] * len(vectors)
        with self._write_lock:
            name = self._index.display_name(identity) or identity
            records = [
                FaceRecord(
                    face_id=uuid.uuid4().hex,
                    identity=name,
                    embedding=vector,
                    embedder=self.embedder_name,
                    created_at=now,
                    box=None if box is None else (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                    thumbnail=thumb,
                )
                for vector, box, thumb in zip(vectors, boxes, thumbs)
            ]
            self.store.add_faces(records)
            self.apply_added(records)
        return records

    def delete_identity(self, identity: str) -> bool:
        with self._write_lock:
            name = self._index.display_name(identity) or identity
            if self.store.delete_identity(name) < 0:
                return False
            self.apply_removed_identity(name)
        return True

    def delete_face(self, identity: str, face_id: str) -> bool:
        with self._write_lock:
            name = self._index.display_name(identity) or identity
            if not self.store.delete_face(name, face_id):
                return False
            self.apply_removed_faces(name, [face_id])
        return True

    # -- changes already committed to the store (here or by another replica) ------------------
    @property
    def write_lock(self) -> threading.RLock:
        """Held across every change to memory: replica sync holds it to apply a change log in
        order, and this process's own writes take it too (re-entrant)."""
        return self._write_lock

    def apply_added(self, records: Sequence[FaceRecord]) -> int:
        """Put committed faces into memory; faces already there are skipped. Returns how many."""
        with self._write_lock:
            added = self._index.add(records)
        if added and self._snapshots is not None:
            self._snapshots.changed()
        return added

    def apply_removed_identity(self, identity: str) -> int:
        """Drop a deleted identity (any case of its name) from memory; returns how many faces."""
        with self._write_lock:
            gone = self._index.remove_identity(identity)
        if gone and self._snapshots is not None:
            self._snapshots.changed(erasure=True)
        return gone

    def apply_removed_faces(self, identity: str, face_ids: Sequence[str]) -> int:
        """Drop deleted faces of an identity from memory; returns how many were there."""
        with self._write_lock:
            gone = self._index.remove_faces(identity, face_ids)
        if gone and self._snapshots is not None:
            self._snapshots.changed(erasure=True)
        return gone

    def apply_moved(self, source: str, target: str, face_ids: Sequence[str] | None = None) -> int:
        """Give committed faces of ``source`` (all, or those named) to ``target``, seen at once."""
        with self._write_lock:
            moved = reassign(self._index, source, target, face_ids)
        if moved and self._snapshots is not None:
            self._snapshots.changed()
        return moved

    def close(self) -> None:
        """Writes a last snapshot when the gallery changed since the previous one."""
        if self._snapshots is not None:
            self._snapshots.close()
        self.store.close()
