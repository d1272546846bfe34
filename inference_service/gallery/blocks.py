"""The columns ``FaceIndex`` keeps its faces in: fixed-size blocks, and the immutable view of them
a search reads (see index.py for why). A published row of a block is never modified."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FACE_ID_BYTES = 32  # uuid4 hex, the ``S32`` column of ``FaceTable``


@dataclass(frozen=True)
class Columns:
    """Faces end to end, column by column, in ``Block``'s order of fields: a table loaded from
    a store or a snapshot, which blocks are cut from without copying."""

    vectors: np.ndarray
    identity: np.ndarray
    labels: np.ndarray
    face_ids: np.ndarray
    created_at: np.ndarray
    boxes: np.ndarray

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (self.vectors, self.identity, self.labels, self.face_ids, self.created_at, self.boxes)


@dataclass(frozen=True)
class Block:
    """Up to ``len(vectors)`` faces; rows ``[0, rows)`` are published and never change."""

    vectors: np.ndarray  # (capacity, dim) float32, unit rows
    identity: np.ndarray  # (capacity,) int32 identity id; -1 = deleted
    labels: np.ndarray  # (capacity,) int64, increasing: the face's key in the approximate index
    face_ids: np.ndarray  # (capacity,) S32
    created_at: np.ndarray  # (capacity,) datetime64[us], UTC
    boxes: np.ndarray  # (capacity, 4) float32, NaN = unknown
    rows: int
    dead: int = 0

    @property
    def capacity(self) -> int:
        return len(self.vectors)

    @classmethod
    def empty(cls, capacity: int, dim: int) -> Block:
        return cls(
            vectors=np.empty((capacity, dim), np.float32),
            identity=np.empty(capacity, np.int32),
            labels=np.empty(capacity, np.int64),
            face_ids=np.empty(capacity, f"S{FACE_ID_BYTES}"),
            created_at=np.empty(capacity, "datetime64[us]"),
            boxes=np.empty((capacity, 4), np.float32),
            rows=0,
        )

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.columns())

    def columns(self) -> tuple[np.ndarray, ...]:
        return (self.vectors, self.identity, self.labels, self.face_ids, self.created_at, self.boxes)


@dataclass(frozen=True)
class View:
    """Everything one search reads: immutable once published."""

    blocks: tuple[Block, ...]
    counts: np.ndarray  # live faces per identity id (ids are never reused)
    faces: int
    identities: int
    # Derived once per view by the first search that needs it (two racing readers compute the
    # same value): the identity column of all blocks end to end, and which rows are deleted.
    derived: dict = field(default_factory=dict, compare=False, repr=False)

    def identity_column(self) -> tuple[np.ndarray, np.ndarray | None]:
        found = self.derived.get("identity")
        if found is None:
            live = [b for b in self.blocks if b.rows]
            identity = np.concatenate([b.identity[: b.rows] for b in live]) if live else np.zeros(0, np.int32)
            found = self.derived["identity"] = (identity, identity < 0 if any(b.dead for b in live) else None)
        return found


def compacted(block: Block) -> Block:
    """The block's live rows in a new, exactly-sized block (no spare room: appends go to the tail).
    A compacted tail leaves the next append to start a new block."""
    live = np.flatnonzero(block.identity[: block.rows] >= 0)
    return Block(
        vectors=block.vectors[live],
        identity=block.identity[live],
        labels=block.labels[live],
        face_ids=block.face_ids[live],
        created_at=block.created_at[live],
        boxes=block.boxes[live],
        rows=len(live),
    )


def already_there(view: View, ids: np.ndarray, face_ids: np.ndarray) -> np.ndarray:
    """Which of the faces the view already holds under a live identity among ``ids`` (face ids
    are uuids, unique across identities). One pass over the identity column, however many
    identities the batch names (a replica re-applying a large batch)."""
    there = np.zeros(len(ids), bool)
    live = np.unique(ids)
    live = live[live < len(view.counts)]
    live = live[view.counts[live] > 0]
    if len(live) == 0:
        return there
    for block in view.blocks:
        rows = np.flatnonzero(np.isin(block.identity[: block.rows], live))
        if len(rows):
            there |= np.isin(face_ids, block.face_ids[rows])
    return there


def best_identities(sims: np.ndarray, identity: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` identity ids with the highest best-face similarity in ``sims`` (one query of the
    exact search).

    Takes the best ``m`` faces, walks them best first keeping each identity's first face; if
    that gave fewer than ``k`` identities (one person's many faces filled the top), masks the
    identities found and repeats. Each round is one partial sort of the row.
    """
    found: dict[int, float] = {}
    if k <= 0:
        return []
    m = min(len(sims), max(8 * k, 64))
    masked = False
    while True:
        n = len(sims)
        top = np.argpartition(sims, n - m)[n - m :] if m < n else np.arange(n)
        top = top[np.argsort(-sims[top], kind="stable")]
        for row in top:
            value = float(sims[row])
            if value == -np.inf:
                break
            ident = int(identity[row])
            if ident not in found:
                found[ident] = value
                if len(found) == k:
                    break
        else:
            if m < n:
                if not masked:
                    sims = sims.copy()
                    masked = True
                sims[np.isin(identity, np.fromiter(found, np.int32, len(found)))] = -np.inf
                continue
        break
    return [(i, min(max(s, -1.0), 1.0)) for i, s in found.items()]
