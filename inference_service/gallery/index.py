"""The in-memory face index the gallery searches: incremental writes, lock-free reads.

A million faces must take an enrollment in milliseconds, so nothing here is rebuilt per write and
nothing is a Python object per face. Faces live in fixed-size *blocks* of numpy columns (vectors,
identity id, face id, time, box). A write touches only the blocks it changes:

* adding faces writes rows past the tail block's published row count (rows no reader looks at),
  then publishes a new view that counts them;
* deleting copies the identity column of the affected blocks (a block's, not the gallery's) with
  the deleted rows set to ``-1`` (tombstones), and publishes a view over the copies; a block more
  than half dead is compacted on the spot, so the cost stays bounded by one block.

A published row is never modified, so a search takes one reference to the current ``View`` and
reads it without a lock: it sees every face of a write or none of them. Writers are serialised by
the caller (``Gallery``'s write lock) and by this index's own lock.

Per-identity best similarity without grouping rows by identity: faces are scanned from the most
similar down and each identity is taken at its first (best) face, so no identity appears twice
and the similarity reported is that identity's maximum, exactly as a per-identity ``max`` would.

Large galleries (``kind`` ``auto`` from ``AUTO_MIN_FACES`` faces, or ``ivf``) are searched through
an approximate IVF index kept beside the blocks (``ann.py``, ``ann_search.py``): it proposes
candidate faces by label and the blocks' exact vectors re-rank them. It is (re)built in a
background thread; until it is ready the exact search answers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np

from . import ann_search
from .blocks import FACE_ID_BYTES, Block, Columns, View, already_there, best_identities, compacted
from .names import identity_key as name_key  # also folds names an older rule let in
from .store import FaceRecord, FaceTable

# Vectors per block: 128 MiB (262,144 faces of 128-d, 65,536 of 512-d). Measured here (2 cores,
# OpenBLAS): one query against 1M faces took 21 ms as 128 MiB blocks or one matrix, but 41 ms as
# 64 MiB blocks, which OpenBLAS multiplies on one thread. Compacting one block stays a bounded copy.
BLOCK_BYTES = 128 * 2**20
# The first blocks of a small gallery are small, so a near-empty gallery does not reserve a whole
# block of address space; each new block doubles up to the full size.
MIN_BLOCK_ROWS = 1024
# Cap on a similarity matrix of queries x faces in one go (elements): a group photo of 30 faces
# against a million enrolled ones is searched in slices instead of a 120 MB temporary.
MAX_SIMILARITIES = 16_000_000
INDEX_KINDS = ("auto", "exact", "ivf")
# ``auto`` searches approximately from this many faces: exact search measured 3 ms per face at
# 100k and 21 ms at 1M here (bench_gallery), so about 5 ms, the budget, near 250k.
AUTO_MIN_FACES = 250_000
# ``ivf`` below this many faces searches exactly: k-means needs faces for its 64 lists.
IVF_MIN_FACES = 1_000
# An IVF trained when the gallery was a quarter of its size has lists 4x as long: retrain then.
REBUILD_GROWTH = 4

log = logging.getLogger(__name__)


class FaceIndex:
    """Faces of one embedder, searchable by cosine similarity, grouped by identity name key."""

    def __init__(self, dim: int, embedder: str = "", kind: str = "exact") -> None:
        if kind not in INDEX_KINDS:
            raise ValueError(f"index kind {kind!r} is not one of {', '.join(INDEX_KINDS)}")
        self.dim = dim
        self.kind = kind
        self.block_rows = max(MIN_BLOCK_ROWS, BLOCK_BYTES // (4 * dim))
        self.embedder = embedder  # what ``faces_of`` records say they were embedded with
        self._lock = threading.Lock()
        # Display name of every identity id ever created (append-only, so a reader holding an
        # older view can still name its ids), and the live ids by name key.
        self._names: list[str] = []
        self._ids: dict[str, int] = {}
        self._view = View((), np.zeros(0, np.int64), 0, 0)
        self._next_label = 0
        self._ann: ann_search.Approximate | None = None
        # The background build in flight: its label watermark and the faces removed since it began.
        self._building: tuple[int, list[tuple[np.ndarray, int]]] | None = None
        self._build_thread: threading.Thread | None = None

    # -- building -----------------------------------------------------------------------------
    @classmethod
    def from_table(cls, table: FaceTable, dim: int, embedder: str = "", kind: str = "exact") -> FaceIndex:
        """The index over a store's start-up load; the table's arrays are used without copies
        where they already have the right type (blocks are views into them)."""
        index = cls(dim, embedder, kind)
        n = len(table.face_ids)
        if n == 0:
            return index
        labels = np.arange(n, dtype=np.int64)
        index._next_label = n
        # Identities whose names differ only in case or byte form are one person: first spelling wins.
        remap = np.fromiter((index._id_for(name) for name in table.names), np.int32, len(table.names))
        identity = remap[np.asarray(table.identity, np.int32)]
        columns = Columns(
            vectors=np.ascontiguousarray(table.embeddings, dtype=np.float32),
            identity=identity,
            labels=labels,
            face_ids=np.asarray(table.face_ids, dtype=f"S{FACE_ID_BYTES}"),
            created_at=np.asarray(table.created_at, dtype="datetime64[us]"),
            boxes=np.ascontiguousarray(table.boxes, dtype=np.float32),
        )
        index._publish_columns(columns)
        with index._lock:
            index._plan_ann()
        return index

    @classmethod
    def restore(
        cls,
        dim: int,
        embedder: str,
        kind: str,
        names: list[str],
        columns: Columns,
        next_label: int,
        approx: ann_search.Approximate | None,
        keys: dict[str, int] | None = None,
    ) -> FaceIndex:
        """The index a snapshot holds (``columns``: live faces only), with its IVF when it has one."""
        index = cls(dim, embedder, kind)
        index._names = list(names)
        index._next_label = next_label
        index._publish_columns(columns)
        counts = index._view.counts
        # The live ids by name key as captured: recomputing 1M keys costs ~28 s of CPU (name_key
        # checks every character), measured 2.8 s for 100k identities.
        if keys is None:
            keys = {name_key(names[i]): i for i in np.flatnonzero(counts).tolist()}
        index._ids = dict(keys)
        with index._lock:
            index._ann = approx if kind != "exact" else None
            index._plan_ann()
        return index

    def _publish_columns(self, columns: Columns) -> None:
        """Blocks that are views into ``columns`` (no copy), published as the current view."""
        n = len(columns.labels)
        size = self.block_rows
        c = columns
        blocks = tuple(
            Block(
                c.vectors[s : s + size],
                c.identity[s : s + size],
                c.labels[s : s + size],
                c.face_ids[s : s + size],
                c.created_at[s : s + size],
                c.boxes[s : s + size],
                rows=min(size, n - s),
            )
            for s in range(0, n, size)
        )
        counts = np.bincount(columns.identity, minlength=len(self._names)).astype(np.int64)
        self._view = View(blocks, counts, n, int(np.count_nonzero(counts)))

    def capture(
        self,
    ) -> tuple[View, list[str], dict[str, int], int, ann_search.Approximate | None, np.ndarray | None]:
        """What a snapshot writes, read together under the writers' lock: the view, the identity
        names, the next label, the approximate index and its IVF serialised (the caller holds
        the gallery's write lock too, so the store's position matches)."""
        with self._lock:
            approx = self._ann
            ivf = approx.ivf.serialize() if approx else None
            return self._view, list(self._names), dict(self._ids), self._next_label, approx, ivf

    @property
    def building(self) -> bool:
        return self._building is not None

    def _id_for(self, display: str) -> int:
        """The live id of ``display``'s key, or a new id named ``display`` (writers only)."""
        key = name_key(display)
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self._names)
            self._names.append(display)
        return found

    # -- reads (lock-free) --------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        view = self._view
        return {"identities": view.identities, "faces": view.faces}

    def _live_id(self, view: View, identity: str) -> int | None:
        found = self._ids.get(name_key(identity))
        if found is None or found >= len(view.counts) or view.counts[found] == 0:
            return None
        return found

    def name_of(self, ident: int) -> str:
        """The display name of identity id ``ident`` (ids of a snapshot's columns)."""
        return self._names[ident]

    def display_name(self, identity: str) -> str | None:
        """The spelling ``identity`` was first enrolled under, if it is enrolled."""
        found = self._live_id(self._view, identity)
        return None if found is None else self._names[found]

    def identities(self) -> list[tuple[str, int]]:
        view = self._view
        live = np.flatnonzero(view.counts)
        return sorted((self._names[i], int(view.counts[i])) for i in live)

    def faces_of(self, identity: str) -> list[FaceRecord] | None:
        view = self._view
        found = self._live_id(view, identity)
        if found is None:
            return None
        name = self._names[found]
        records = []
        for block in view.blocks:
            for row in np.flatnonzero(block.identity[: block.rows] == found):
                box = block.boxes[row]
                records.append(
                    FaceRecord(
                        face_id=block.face_ids[row].decode("ascii"),
                        identity=name,
                        embedding=block.vectors[row].copy(),
                        embedder=self.embedder,
                        created_at=np.datetime_as_string(block.created_at[row], unit="us") + "+00:00",
                        box=None
                        if np.isnan(box).any()
                        else (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                    )
                )
        return records or None

    def search(self, queries: np.ndarray, top_k: int) -> list[list[tuple[str, float]]]:
        """For each query row, up to ``top_k`` (identity, best similarity), best first."""
        view = self._view
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if view.identities == 0:
            return [[] for _ in queries]
        blocks = [b for b in view.blocks if b.rows]
        ann = self._ann
        if ann is not None:
            return ann.search(blocks, self._names, queries, top_k, view.identities)
        identity, dead = view.identity_column()
        k = min(top_k, view.identities)
        step = max(1, MAX_SIMILARITIES // len(identity))
        out: list[list[tuple[str, float]]] = []
        for start in range(0, len(queries), step):
            chunk = queries[start : start + step]
            sims = np.empty((len(chunk), len(identity)), np.float32)
            offset = 0
            for block in blocks:  # each block's products straight into its columns
                np.matmul(chunk, block.vectors[: block.rows].T, out=sims[:, offset : offset + block.rows])
                offset += block.rows
            if dead is not None:
                sims[:, dead] = -np.inf
            for row in sims:
                out.append([(self._names[i], sim) for i, sim in best_identities(row, identity, k)])
        return out

    def nbytes(self, reserved: bool = False) -> int:
        """Bytes of the rows the current view holds, all columns (``reserved``: of the whole
        arrays, a tail block's rows not written yet included: address space more than memory,
        since untouched pages of ``np.empty`` take none)."""
        view = self._view
        seen: set[int] = set()
        ann = self._ann
        total = view.counts.nbytes + (ann.nbytes() if ann is not None else 0)
        for block in view.blocks:
            columns = block.columns()
            if not reserved:
                total += sum(a[: block.rows].nbytes for a in columns)
                continue
            for array in columns:
                base = array if array.base is None else array.base
                if id(base) not in seen:
                    seen.add(id(base))
                    total += base.nbytes if isinstance(base, np.ndarray) else array.nbytes
        return total

    # -- writes (serialised) ------------------------------------------------------------------
    def add(self, records: Sequence[FaceRecord]) -> int:
        """Append faces (an identity is matched by name key; a new one keeps its spelling).
        Faces whose id is already there for that identity are skipped, so re-applying a change
        is harmless. Returns how many were added."""
        if not records:
            return 0
        with self._lock:
            view = self._view
            ids = np.fromiter((self._id_for(r.identity) for r in records), np.int32, len(records))
            face_ids = np.array([_face_id_bytes(r.face_id) for r in records], dtype=f"S{FACE_ID_BYTES}")
            keep = ~already_there(view, ids, face_ids)
            if not keep.all():
                records = [r for r, k in zip(records, keep) if k]
                ids, face_ids = ids[keep], face_ids[keep]
            if not records:
                return 0
            vectors = np.stack([np.asarray(r.embedding, np.float32).reshape(self.dim) for r in records])
            created = np.array([_utc_micros(r.created_at) for r in records], dtype="datetime64[us]")
            boxes = np.array(
                [r.box if r.box is not None else (np.nan,) * 4 for r in records], dtype=np.float32
            ).reshape(len(records), 4)
            labels = np.arange(self._next_label, self._next_label + len(records), dtype=np.int64)
            self._next_label += len(records)
            blocks = list(view.blocks)
            self.append_rows(blocks, ids, vectors, labels, face_ids, created, boxes)
            counts = np.zeros(len(self._names), np.int64)
            counts[: len(view.counts)] = view.counts
            np.add.at(counts, ids, 1)
            self._publish(blocks, counts)
            if self._ann is not None:
                self._ann.add(vectors, labels, ids)
            self._plan_ann()
            return len(records)

    def remove_identity(self, identity: str) -> int:
        """Tombstone every face of ``identity`` (by name key); returns how many went."""
        with self._lock:
            view = self._view
            found = self._live_id(view, identity)
            if found is None:
                return 0
            return self._remove(view, found, None)

    def remove_faces(self, identity: str, face_ids: Iterable[str]) -> int:
        """Tombstone the named faces of ``identity``; returns how many went."""
        wanted = np.array([_face_id_bytes(f) for f in face_ids], dtype=f"S{FACE_ID_BYTES}")
        with self._lock:
            view = self._view
            found = self._live_id(view, identity)
            if found is None or len(wanted) == 0:
                return 0
            return self._remove(view, found, wanted)

    def _remove(self, view: View, ident: int, wanted: np.ndarray | None) -> int:
        blocks = []
        gone = 0
        labels = []
        for block in view.blocks:
            rows = np.flatnonzero(block.identity[: block.rows] == ident)
            if wanted is not None and len(rows):
                rows = rows[np.isin(block.face_ids[rows], wanted)]
            if len(rows) == 0:
                blocks.append(block)
                continue
            identity = block.identity.copy()
            identity[rows] = -1
            gone += len(rows)
            labels.append(block.labels[rows])
            changed = replace(block, identity=identity, dead=block.dead + len(rows))
            if changed.dead * 2 > changed.rows:
                changed = compacted(changed)
            if changed.rows:
                blocks.append(changed)
        if gone == 0:
            return 0
        counts = view.counts.copy()
        counts[ident] -= gone
        if counts[ident] == 0:
            self._ids.pop(name_key(self._names[ident]), None)
        self._publish(blocks, counts)
        removed = np.concatenate(labels)
        if self._ann is not None:
            self._ann.remove(removed, ident)
        if self._building is not None:
            self._building[1].append((removed, ident))
        self._plan_ann()
        return gone

    # -- the approximate index (writers hold ``_lock``) -----------------------------------------
    def _plan_ann(self) -> None:
        """Start a background (re)build when the gallery crossed a size, or drop the IVF below it."""
        faces = self._view.faces
        wanted = self.kind == "ivf" and faces >= IVF_MIN_FACES or self.kind == "auto" and faces >= AUTO_MIN_FACES
        if not wanted:
            if self._ann is not None and faces < (AUTO_MIN_FACES // 2 if self.kind == "auto" else IVF_MIN_FACES):
                self._ann = None  # small again: exact search is fast enough (half: no flapping)
            return
        if self._building is not None:
            return
        if self._ann is not None and faces <= REBUILD_GROWTH * self._ann.trained_on:
            return
        view = self._view
        self._building = (self._next_label, [])
        self._build_thread = threading.Thread(target=self._build_ann, args=(view,), name="face-ivf-build", daemon=True)
        self._build_thread.start()

    def _build_ann(self, view: View) -> None:
        try:
            blocks = [b for b in view.blocks if b.rows]
            approx = ann_search.build(blocks, view.faces)
            with self._lock:
                assert self._building is not None
                watermark, removed = self._building
                ann_search.catch_up(approx, self._view.blocks, watermark, removed)
                self._ann, self._building = approx, None
            log.info("gallery index: IVF of %d lists over %d faces ready", approx.ivf.nlist, approx.ivf.ntotal)
        except Exception:
            log.exception("gallery index: building the IVF failed; searching exactly")
            with self._lock:
                self._building = None

    def wait_for_ann(self, timeout: float | None = None) -> bool:
        """Wait for a build in flight; True when searches now go through the IVF."""
        thread = self._build_thread
        if thread is not None:
            thread.join(timeout)
        return self._ann is not None

    @property
    def ann(self) -> ann_search.Approximate | None:
        return self._ann

    def append_rows(
        self,
        blocks: list[Block],
        identity: np.ndarray | int,
        vectors: np.ndarray,
        labels: np.ndarray,
        face_ids: np.ndarray,
        created: np.ndarray,
        boxes: np.ndarray,
    ) -> None:
        """Write rows past the tail's published count (``identity``: one id per row, or one for
        all); a full tail starts a new block. Nothing is published: the caller does that. Shared by
        :meth:`add` and the curation moves (``index_moves.py``), which append the same way."""
        done = 0
        while done < len(vectors):
            tail = blocks[-1] if blocks else None
            if tail is None or tail.rows == tail.capacity:
                total = sum(b.rows for b in blocks)
                capacity = int(min(self.block_rows, max(MIN_BLOCK_ROWS, total, len(vectors) - done)))
                tail = Block.empty(capacity, self.dim)
                blocks.append(tail)
            take = min(tail.capacity - tail.rows, len(vectors) - done)
            rows = slice(tail.rows, tail.rows + take)
            part = slice(done, done + take)
            tail.vectors[rows] = vectors[part]
            tail.identity[rows] = identity[part] if isinstance(identity, np.ndarray) else identity
            tail.labels[rows] = labels[part]
            tail.face_ids[rows] = face_ids[part]
            tail.created_at[rows] = created[part]
            tail.boxes[rows] = boxes[part]
            blocks[-1] = replace(tail, rows=tail.rows + take)
            done += take

    def _publish(self, blocks: list[Block], counts: np.ndarray) -> None:
        faces = int(counts.sum())
        self._view = View(tuple(blocks), counts, faces, int(np.count_nonzero(counts)))


def _face_id_bytes(face_id: str) -> bytes:
    raw = face_id.encode("ascii")
    if len(raw) > FACE_ID_BYTES:
        raise ValueError(f"face id {face_id!r} is longer than {FACE_ID_BYTES} characters")
    return raw


def _utc_micros(stamp: str) -> np.datetime64:
    moment = datetime.fromisoformat(stamp)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(moment, "us")
