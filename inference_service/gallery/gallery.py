"""The gallery: enrolled identities searched in memory, persisted through a ``GalleryStore``.

Search reads an immutable snapshot (one float32 matrix with rows grouped by identity), so it
needs no lock and never sees half an update: writers commit to the store first, then build a new
snapshot and swap it in under the write lock. Per-identity best similarity is a ``reduceat``
over each identity's rows, so no identity can appear twice among the candidates.
"""
from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from .factory import open_store
from .names import name_key, validate_name
from .store import FaceRecord, GalleryStore, identity_key


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


@dataclass(frozen=True)
class _Snapshot:
    matrix: np.ndarray  # faces x dim, unit rows, grouped by identity
    names: list[str]  # identity of each group
    starts: np.ndarray  # first row of each group
    records: tuple[FaceRecord, ...]

    @classmethod
    def build(cls, records: Sequence[FaceRecord], dim: int) -> "_Snapshot":
        # Stable sort: within an identity, faces keep the order they were added in.
        records = tuple(sorted(records, key=lambda r: r.identity))
        if not records:
            return cls(np.zeros((0, dim), np.float32), [], np.zeros(0, np.int64), ())
        matrix = np.ascontiguousarray(np.stack([r.embedding for r in records]).astype(np.float32))
        names: list[str] = []
        starts: list[int] = []
        for row, rec in enumerate(records):
            if not names or names[-1] != rec.identity:
                names.append(rec.identity)
                starts.append(row)
        return cls(matrix, names, np.asarray(starts, np.int64), records)


class Gallery:
    """Thread-safe enrolled-face gallery for one embedder."""

    def __init__(self, store: GalleryStore, embedder_name: str, dim: int) -> None:
        self.store = store
        self.embedder_name = embedder_name
        self.dim = dim
        self._write_lock = threading.RLock()  # reentrant: see write_lock
        records = store.load_all()
        bad = [r for r in records if len(r.embedding) != dim]
        if bad:
            raise ValueError(f"gallery holds {len(bad[0].embedding)}-d vectors; {embedder_name} makes {dim}-d")
        self._snapshot = _Snapshot.build(records, dim)
        # name key -> the identity's first spelling, the one stored and shown; changed only
        # under the write lock, after the store succeeded.
        self._spelling: dict[str, str] = {}
        for name in dict.fromkeys(r.identity for r in records):  # each name once, in order
            self._spelling.setdefault(identity_key(name), name)

    @classmethod
    def open(cls, path: str | Path, embedder_name: str, dim: int) -> "Gallery":
        """Open (or create) the gallery a path or URL names; refuses one written by another embedder."""
        return cls(open_store(path, embedder_name, dim), embedder_name, dim)

    # -- reads --------------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        snap = self._snapshot
        return {"identities": len(snap.names), "faces": len(snap.records)}

    def identities(self) -> list[tuple[str, int]]:
        snap = self._snapshot
        ends = list(snap.starts[1:]) + [len(snap.records)]
        return [(name, int(end - start)) for name, start, end in zip(snap.names, snap.starts, ends)]

    def _stored_spelling(self, identity: str) -> str | None:
        """The enrolled spelling of ``identity`` in any case (``obama`` finds ``Obama``)."""
        return self._spelling.get(identity_key(identity))

    def faces_of(self, identity: str) -> list[FaceRecord] | None:
        """The faces of ``identity`` in any case; their ``identity`` is the stored spelling."""
        identity = self._stored_spelling(identity)
        found = [r for r in self._snapshot.records if r.identity == identity]
        return found or None

    def search(self, embeddings: np.ndarray, threshold: float, top_k: int = 5) -> list[Recognition]:
        """Best identities for each query vector (rows of ``embeddings``), best first."""
        queries = np.asarray(embeddings, dtype=np.float32).reshape(-1, self.dim)
        snap = self._snapshot
        if len(queries) == 0:
            return []
        if not snap.names:
            return [Recognition(None, 0.0, []) for _ in queries]
        sims = np.clip(queries @ snap.matrix.T, -1.0, 1.0)  # queries x faces
        per_identity = np.maximum.reduceat(sims, snap.starts, axis=1)  # queries x identities
        k = min(top_k, per_identity.shape[1])
        top = np.argpartition(-per_identity, k - 1, axis=1)[:, :k]
        out = []
        for row, cols in zip(per_identity, top):
            cols = cols[np.argsort(-row[cols])]
            candidates = [Candidate(snap.names[c], float(row[c])) for c in cols]
            best = candidates[0]
            out.append(Recognition(best.identity if best.similarity >= threshold else None, best.similarity, candidates))
        return out

    # -- writes -------------------------------------------------------------------------------
    def enroll(
        self,
        identity: str,
        embeddings: np.ndarray,
        boxes: Sequence[Sequence[float] | None] | None = None,
    ) -> list[FaceRecord]:
        """Add faces to ``identity`` (created if new); all or nothing. An identity enrolled
        before under another case keeps its first spelling: the records carry that one."""
        identity = validate_name(identity)
        vectors = np.asarray(embeddings, dtype=np.float32).reshape(-1, self.dim)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.maximum(norms, 1e-12)
        now = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        boxes = list(boxes) if boxes is not None else [None] * len(vectors)
        with self._write_lock:
            identity = self._stored_spelling(identity) or identity
            records = [
                FaceRecord(
                    face_id=uuid.uuid4().hex,
                    identity=identity,
                    embedding=vector,
                    embedder=self.embedder_name,
                    created_at=now,
                    box=None if box is None else tuple(float(v) for v in box),
                )
                for vector, box in zip(vectors, boxes)
            ]
            self.store.add_faces(records)
            self._snapshot = _Snapshot.build(self._snapshot.records + tuple(records), self.dim)
            self._spelling[identity_key(identity)] = identity
        return records

    def delete_identity(self, identity: str) -> bool:
        """``identity`` in any case."""
        with self._write_lock:
            identity = self._stored_spelling(identity)
            if identity is None or self.store.delete_identity(identity) < 0:
                return False
            self._snapshot = _Snapshot.build([r for r in self._snapshot.records if r.identity != identity], self.dim)
            del self._spelling[identity_key(identity)]
        return True

    def delete_face(self, identity: str, face_id: str) -> bool:
        """``identity`` in any case; the identity goes with its last face."""
        with self._write_lock:
            identity = self._stored_spelling(identity)
            if identity is None or not self.store.delete_face(identity, face_id):
                return False
            self._snapshot = _Snapshot.build(
                [r for r in self._snapshot.records if r.face_id != face_id], self.dim
            )
            if not any(r.identity == identity for r in self._snapshot.records):
                del self._spelling[identity_key(identity)]
        return True

    # -- changes made elsewhere (replica sync): memory only, no store write --------------------
    @property
    def write_lock(self) -> threading.RLock:
        """Held across every change to memory. Replica sync holds it to apply the change log in
        order; a write of this process applies earlier log entries while holding it (reentrant)."""
        return self._write_lock

    def apply_added(self, records: Sequence[FaceRecord]) -> None:
        """Faces another replica stored; ids already in memory are skipped (idempotent)."""
        with self._write_lock:
            have = {r.face_id for r in self._snapshot.records}
            new = tuple(r for r in records if r.face_id not in have)
            if new:
                self._snapshot = _Snapshot.build(self._snapshot.records + new, self.dim)

    def apply_removed_identity(self, identity: str) -> None:
        key = name_key(identity)
        with self._write_lock:
            self._snapshot = _Snapshot.build(
                [r for r in self._snapshot.records if name_key(r.identity) != key], self.dim
            )

    def apply_removed_faces(self, identity: str, face_ids: Sequence[str]) -> None:
        gone = set(face_ids)
        with self._write_lock:
            self._snapshot = _Snapshot.build([r for r in self._snapshot.records if r.face_id not in gone], self.dim)

    def close(self) -> None:
        self.store.close()
