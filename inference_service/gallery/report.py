"""The gallery's own report of its likely mistakes.

A face enrolled under the wrong name disagrees with the rest of its identity; two identities
enrolled from one person (two spellings) agree with each other. Both are measured with the
recognition threshold, the line the service already draws between "this person" and "unknown":

* a face's *agreement* is its cosine similarity to the template (normalised mean) of the other
  faces of its identity; below the threshold it is flagged "may not be this person" (an identity
  of one face has nothing to agree with: no agreement, never flagged);
* two identities whose templates are at least the threshold apart in cosine are a pair that
  "may be the same person", best first.

Everything is computed from the stored table with numpy: grouped sums by one sparse product, then
the templates' similarities in row blocks of the upper triangle, scanned only where a row's
maximum reaches the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from .names import identity_key
from .store import FaceRecord, FaceTable

PAIR_BLOCK = 1024  # template rows per similarity block: 1024 x 10,000 floats is 40 MB


@dataclass(frozen=True)
class Report:
    pairs: list[tuple[str, str, float]]  # (a, b, similarity), best first
    flagged: list[tuple[str, str, float]]  # (identity, face id, agreement), worst first

    def as_json(self) -> dict:
        return {
            "pairs": [{"a": a, "b": b, "similarity": round(s, 4)} for a, b, s in self.pairs],
            "flagged": [{"identity": i, "face_id": f, "agreement": round(g, 4)} for i, f, g in self.flagged],
        }


def agreements(vectors: np.ndarray) -> np.ndarray:
    """Each row's similarity to the normalised mean of the other rows (NaN for a single row)."""
    vectors = np.asarray(vectors, np.float32)
    if len(vectors) < 2:
        return np.full(len(vectors), np.nan, np.float32)
    total = vectors.sum(axis=0)
    return _leave_one_out(vectors, total[None, :])


def face_agreements(records: list[FaceRecord], threshold: float) -> list[tuple[float | None, bool]]:
    """(agreement, flagged) of each face of one identity, in order."""
    found = agreements(np.stack([r.embedding for r in records])) if records else np.zeros(0)
    return [(None, False) if np.isnan(a) else (float(a), bool(a < threshold)) for a in found]


def gallery_report(
    table: FaceTable, threshold: float, limit: int = 100, dismissed: set[tuple[str, str]] | None = None
) -> Report:
    """Up to ``limit`` pairs and ``limit`` flagged faces of the stored gallery; ``dismissed``
    pairs of name keys (said not to be one person) are not suggested again."""
    n = len(table.face_ids)
    if n == 0:
        return Report([], [])
    identity = np.asarray(table.identity, np.int64)
    vectors = np.asarray(table.embeddings, np.float32)
    groups = len(table.names)
    # each identity's sum of faces: a sparse (identities x faces) indicator times the vectors
    member = scipy.sparse.csr_matrix((np.ones(n, np.float32), (identity, np.arange(n))), shape=(groups, n))
    sums = np.asarray(member @ vectors, np.float32)
    sizes = np.bincount(identity, minlength=groups)
    # faces: leave-one-out agreement within their identity
    agree = _leave_one_out(vectors, sums[identity])
    agree[sizes[identity] < 2] = np.nan
    bad = np.flatnonzero(agree < threshold)
    bad = bad[np.argsort(agree[bad], kind="stable")][:limit]
    flagged = [(table.names[int(identity[i])], table.face_ids[i].decode(), float(agree[i])) for i in bad]
    # identities: templates at least the threshold alike (each pair once: the upper triangle)
    live = np.flatnonzero(sizes)
    templates = sums[live] / np.linalg.norm(sums[live], axis=1, keepdims=True)
    found: list[tuple[float, int, int]] = []
    for start in range(0, len(templates), PAIR_BLOCK):
        stop = min(start + PAIR_BLOCK, len(templates))
        block = templates[start:stop] @ templates[start:].T  # column j is identity start + j
        block[np.tril_indices(stop - start)] = -np.inf  # itself, and pairs an earlier block holds
        hot = np.flatnonzero(block.max(axis=1) >= threshold)
        if len(hot):
            rows, cols = np.nonzero(block[hot] >= threshold)
            rows = hot[rows]
            found.extend(zip(block[rows, cols].tolist(), (rows + start).tolist(), (cols + start).tolist()))
    found.sort(key=lambda item: -item[0])
    names = [table.names[int(i)] for i in live]
    if dismissed:
        keys = [identity_key(name) for name in names]
        found = [f for f in found if (min(keys[f[1]], keys[f[2]]), max(keys[f[1]], keys[f[2]])) not in dismissed]
    pairs = [(names[i], names[j], s) for s, i, j in found[:limit]]
    return Report(pairs, flagged)


def _leave_one_out(vectors: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """e . (S - e) / |S - e| for unit rows e and their group sums S, without forming S - e."""
    dot = np.einsum("ij,ij->i", vectors, sums)
    squared = np.einsum("ij,ij->i", sums, sums) - 2 * dot + np.einsum("ij,ij->i", vectors, vectors)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((dot - np.einsum("ij,ij->i", vectors, vectors)) / np.sqrt(np.maximum(squared, 1e-12))).astype(
            np.float32
        )
