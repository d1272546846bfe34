"""Approximate search over ``FaceIndex`` blocks: candidates from the IVF, exact re-ranking.

``FaceIndex`` gives every face a label when it is added (increasing, never reused), so each
block's label column is sorted and a label is located with two binary searches. Per query:

1. the IVF proposes ``CANDIDATES`` faces;
2. their exact cosine similarities (float32 vectors of the blocks) pick the best identities;
3. every face of those identities (``FacesByIdentity``) is scored exactly, so each identity's
   similarity is its true best face's, as the exact search reports it, even when the IVF proposed
   another of its faces. Only an identity none of whose faces was proposed can be missed.

A build reads one immutable view, so it runs in a background thread while writes continue: faces
added meanwhile have labels at or above the build's ``watermark`` and faces deleted meanwhile are
recorded; ``catch_up`` applies both before the new index replaces the old one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .ann import TRAIN_PER_LIST, IvfIndex, lists_for

# Candidate faces per query before re-ranking: enough for the top 5 identities of people with
# many faces each (the grouping retries with 8x as many when one person fills them).
CANDIDATES = 128
RETRY_FACTOR = 8


def live_rows(block: Any) -> np.ndarray:
    return np.flatnonzero(block.identity[: block.rows] >= 0)


class FacesByIdentity:
    """The labels of each identity's faces: a grouped base read once, and the identities changed
    since in a dict. Readers take whichever array an id maps to; a deleted face still listed is
    dropped by ``locate`` (its identity is tombstoned in the blocks)."""

    def __init__(self, ids: np.ndarray, labels: np.ndarray) -> None:
        order = np.argsort(ids, kind="stable")
        self._labels = labels[order]
        self._starts = np.searchsorted(ids[order], np.arange(int(ids.max(initial=-1)) + 2))
        self._changed: dict[int, np.ndarray] = {}

    @classmethod
    def grouped(cls, labels: np.ndarray, starts: np.ndarray) -> FacesByIdentity:
        """From ``grouped_arrays`` (as a snapshot keeps them): no sort at start-up."""
        found = cls.__new__(cls)
        found._labels, found._starts, found._changed = labels, starts, {}
        return found

    def grouped_arrays(self, identities: int) -> tuple[np.ndarray, np.ndarray]:
        """Labels grouped by identity id and where each id's group starts (``identities`` + 1)."""
        parts = [self.of(i) for i in range(identities)] if self._changed else None
        if parts is None:
            starts = np.zeros(identities + 1, np.int64)
            known = min(identities + 1, len(self._starts))
            starts[:known] = self._starts[:known]
            starts[known:] = self._starts[-1] if len(self._starts) else 0
            return self._labels, starts
        sizes = np.fromiter((len(p) for p in parts), np.int64, identities)
        return np.concatenate(parts) if parts else self._labels[:0], np.concatenate([[0], np.cumsum(sizes)])

    def of(self, ident: int) -> np.ndarray:
        found = self._changed.get(ident)
        if found is not None:
            return found
        if ident + 1 >= len(self._starts):
            return self._labels[:0]
        return self._labels[self._starts[ident] : self._starts[ident + 1]]

    def add(self, ids: np.ndarray, labels: np.ndarray) -> None:
        order = np.argsort(ids, kind="stable")
        unique, starts = np.unique(ids[order], return_index=True)
        for ident, part in zip(unique.tolist(), np.split(labels[order], starts[1:])):
            self._changed[ident] = np.concatenate([self.of(ident), part])

    def remove(self, ident: int, labels: np.ndarray) -> None:
        self._changed[ident] = np.setdiff1d(self.of(ident), labels)

    def nbytes(self) -> int:
        return self._labels.nbytes + self._starts.nbytes + sum(a.nbytes + 100 for a in self._changed.values())


class Approximate:
    """The IVF and the faces by identity, changed together by the index's (serialised) writers."""

    def __init__(self, ivf: IvfIndex, by_identity: FacesByIdentity) -> None:
        self.ivf = ivf
        self.by_identity = by_identity

    @property
    def trained_on(self) -> int:
        return self.ivf.trained_on

    def add(self, vectors: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> None:
        self.ivf.add(vectors, labels)
        self.by_identity.add(ids, labels)

    def remove(self, labels: np.ndarray, ident: int) -> None:
        self.ivf.remove(labels)
        self.by_identity.remove(ident, labels)

    def nbytes(self) -> int:
        return self.ivf.nbytes() + self.by_identity.nbytes()

    def search(
        self, blocks: Sequence[Any], names: Sequence[str], queries: np.ndarray, top_k: int, identities: int
    ) -> list[list[tuple[str, float]]]:
        """Up to ``top_k`` (identity, exact best similarity) per query."""
        k = min(top_k, identities)
        if k <= 0:
            return [[] for _ in queries]
        wanted = max(CANDIDATES, 16 * k)
        labels = self.ivf.search(queries, wanted)
        out = []
        for query, row in zip(queries, labels):
            best = self._best(blocks, row, query, k)
            if len(best) < k and row[-1] >= 0:  # one person's faces filled the candidates: ask for more
                best = self._best(blocks, self.ivf.search(query[None], wanted * RETRY_FACTOR)[0], query, k)
            out.append([(names[i], min(max(s, -1.0), 1.0)) for i, s in best])
        return out

    def _best(self, blocks: Sequence[Any], labels: np.ndarray, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        found = best_identities(blocks, labels[labels >= 0], query, k)
        if not found:
            return []
        # Every face of the identities found, so each one's similarity is its best face's.
        every = np.concatenate([self.by_identity.of(i) for i, _ in found])
        return best_identities(blocks, every, query, k) or found


def best_identities(blocks: Sequence[Any], labels: np.ndarray, query: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` identities with the highest exact similarity among the faces ``labels``."""
    sims, ident = [], []
    for block, rows in locate(blocks, labels):
        sims.append(block.vectors[rows] @ query)
        ident.append(block.identity[rows])
    if not sims:
        return []
    sim = np.concatenate(sims)
    who = np.concatenate(ident)
    found: dict[int, float] = {}
    for row in np.argsort(-sim, kind="stable"):
        i = int(who[row])
        if i not in found:
            found[i] = float(sim[row])
            if len(found) == k:
                break
    return list(found.items())


def locate(blocks: Sequence[Any], labels: np.ndarray) -> list[tuple[Any, np.ndarray]]:
    """(block, rows) holding the labels that are live faces of ``blocks``."""
    if len(labels) == 0 or not blocks:
        return []
    firsts = np.array([b.labels[0] for b in blocks], np.int64)
    which = np.searchsorted(firsts, labels, side="right") - 1
    found = []
    for b in np.unique(which[which >= 0]).tolist():
        block = blocks[b]
        wanted = labels[which == b]
        rows = np.minimum(np.searchsorted(block.labels[: block.rows], wanted), block.rows - 1)
        ok = (block.labels[rows] == wanted) & (block.identity[rows] >= 0)
        if ok.any():
            found.append((block, rows[ok]))
    return found


def _mix(words: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, vectorised: a fixed, well-spread hash of 64-bit words."""
    z = words.copy()
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def face_key(face_ids: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each ``S32`` face id: the training sample's order, the same on every
    replica whatever order it loaded the faces in (ids of any bytes, not only uuids)."""
    words = np.ascontiguousarray(face_ids, dtype="S32").view(np.uint64).reshape(len(face_ids), 4)
    key = np.zeros(len(face_ids), np.uint64)
    with np.errstate(over="ignore"):
        for column in range(4):
            key = _mix(key ^ words[:, column])
    return key


def training_sample(blocks: Sequence[Any], count: int) -> np.ndarray:
    """The vectors of the ``count`` live faces with the smallest ``face_key``, in key order."""
    keys, where = [], []
    for b, block in enumerate(blocks):
        rows = live_rows(block)
        keys.append(face_key(block.face_ids[rows]))
        where.append(np.stack([np.full(len(rows), b), rows], axis=1))
    key = np.concatenate(keys)
    at = np.concatenate(where)
    pick = np.argpartition(key, count - 1)[:count] if count < len(key) else np.arange(len(key))
    pick = pick[np.argsort(key[pick], kind="stable")]
    return np.stack([blocks[b].vectors[r] for b, r in at[pick].tolist()])


def build(blocks: Sequence[Any], faces: int) -> Approximate:
    """An index trained on a deterministic sample of the live faces of ``blocks`` and holding them."""
    blocks = [b for b in blocks if b.rows]
    ivf = IvfIndex.train(training_sample(blocks, lists_for(faces) * TRAIN_PER_LIST), faces)
    ids, labels = [], []
    for block in blocks:
        rows = live_rows(block)
        ivf.add(block.vectors[rows], block.labels[rows], bulk=True)
        ids.append(block.identity[rows])
        labels.append(block.labels[rows])
    return Approximate(ivf, FacesByIdentity(np.concatenate(ids), np.concatenate(labels)))


def catch_up(
    approx: Approximate, blocks: Sequence[Any], watermark: int, removed: Sequence[tuple[np.ndarray, int]]
) -> None:
    """Bring an index built from an older view up to ``blocks``: faces added since (label >=
    ``watermark``) go in, faces removed since (``removed``: labels and identity) go out."""
    for labels, ident in removed:
        approx.remove(labels[labels < watermark], ident)
    for block in blocks:
        if block.rows and block.labels[block.rows - 1] >= watermark:
            rows = live_rows(block)
            rows = rows[block.labels[rows] >= watermark]
            approx.add(block.vectors[rows], block.labels[rows], block.identity[rows])
