"""The approximate part of a large gallery's search: a faiss IVF index of 4-bit PQ codes.

Above a few hundred thousand faces reading every vector per search costs more than a request may
spend (21 ms per face at 1M here), so ``FaceIndex`` asks this index for a few hundred candidate
faces and re-ranks them with the exact float32 vectors it keeps anyway: the similarities a search
returns are exact, only a face the IVF does not propose can be missed.

* IVF (inverted lists) over ``nlist`` k-means centroids; each face is a product-quantised code of
  the residual from its centroid, 4 bits per pair of dimensions (``PQ{dim/2}x4fs``: 32 bytes for a
  128-d face) plus its 8-byte label, 0.08 of the float32 vectors. faiss scans such "fast-scan"
  codes with SIMD shuffles: measured here on 300k structured faces, as many candidates proposed
  as by 8-bit scalar codes in a tenth of the time, so many more lists can be probed per query.
* Writes stay incremental: ``add`` appends codes to their lists; ``remove`` drops labels in a
  background pass shortly after (answers drop them at once).
* Deterministic: the training sample is chosen by a hash of the face ids, k-means and the PQ
  training run with fixed seeds, so replicas holding the same faces train the same index.
* faiss objects are not safe to search while another thread adds to them; a readers-writer lock
  lets searches run side by side and makes a write wait for them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

# faiss says which CPU build it loads, at INFO, when imported: noise in every start-up's log, and a
# start that must stop says so in one line (tests/live/test_startup.py counts them).
logging.getLogger("faiss.loader").setLevel(logging.WARNING)
import faiss  # noqa: E402  (after quieting its loader)

# k-means seed: any fixed number; the same on every replica.
TRAIN_SEED = 1234
# Training points per centroid: faiss warns below 39; 40 keeps a 4096-list training to ~160k points.
# (The PQ's 16 centroids per sub-quantiser need far fewer.)
TRAIN_PER_LIST = 40
KMEANS_ITERATIONS = 10
# Removals wait this long for others to share one pass over the lists.
PURGE_DELAY_S = 0.5
MAX_LISTS = 4096
MIN_LISTS = 16


def lists_for(faces: int) -> int:
    """Inverted lists for ``faces``: the power of two nearest sqrt(faces) (faiss's rule of thumb
    is 1-16 x sqrt), at most 4096 so that training stays about a minute on two cores, and few
    enough that each gets its ``TRAIN_PER_LIST`` training faces."""
    by_size = 2 ** round(np.log2(np.sqrt(max(faces, 1))))
    by_sample = 2 ** int(np.log2(max(faces // TRAIN_PER_LIST, 1)))
    return int(min(MAX_LISTS, max(MIN_LISTS, min(by_size, by_sample))))


def probes_for(nlist: int) -> int:
    """Lists searched per query: 1/64 of them, at least 32. Measured on structured synthetic faces
    (10 per person, new photos of enrolled people as probes): recall@1 of the identity 1.0 at 16
    of 512 lists (300k faces) and at 32 of 4096 (1M faces; 0.99 at 16). Real faces enrolled among
    20,000 synthetic ones (``tests/integration/test_gallery_ann_faces.py``) need more: two faces
    of one person were missed at 16 of 128 lists and none at 32. ``bench_gallery --scale``
    measures recall at 10M."""
    return min(nlist, max(32, nlist // 64))


class _ReadWriteLock:
    """Many readers or one writer; a waiting writer holds new readers back (no starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


class IvfIndex:
    """Unit vectors by int64 label, searched by inner product (= cosine) through faiss IVF."""

    kind = "ivf"

    def __init__(self, index: faiss.IndexIVFPQFastScan, trained_on: int) -> None:
        self._index = index
        self.trained_on = trained_on  # faces in the gallery when it was trained (rebuild cue)
        self._lock = _ReadWriteLock()
        self._pending: list[np.ndarray] = []
        self._pending_lock = threading.Lock()
        self._purger: threading.Thread | None = None

    @classmethod
    def train(cls, sample: np.ndarray, faces: int) -> IvfIndex:
        """An empty index whose centroids are trained on ``sample`` (rows in a deterministic order)."""
        dim = sample.shape[1]
        nlist = lists_for(faces)
        sample = np.ascontiguousarray(sample[: nlist * TRAIN_PER_LIST], dtype=np.float32)
        if len(sample) < nlist:
            raise ValueError(f"{len(sample)} training faces for {nlist} lists")
        kmeans = faiss.Kmeans(dim, nlist, niter=KMEANS_ITERATIONS, seed=TRAIN_SEED, spherical=True)
        kmeans.cp.max_points_per_centroid = TRAIN_PER_LIST
        kmeans.train(sample)
        assert kmeans.centroids is not None
        quantizer = faiss.IndexFlatIP(dim)  # an HNSW over the centroids measured no faster to add through
        quantizer.add(kmeans.centroids)
        index = faiss.IndexIVFPQFastScan(quantizer, dim, nlist, dim // 2, 4, faiss.METRIC_INNER_PRODUCT)
        index.train(sample)  # the quantizer is trained already: this trains the PQ only
        index.nprobe = probes_for(nlist)
        return cls(index, faces)

    # -- reads --------------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        """Faces in the lists, those removed but not yet purged included."""
        return int(self._index.ntotal)

    @property
    def nlist(self) -> int:
        return int(self._index.nlist)

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        """The labels of up to ``k`` most similar faces per query (-1 pads), best first by code.
        Labels removed but not yet purged may be among them (the caller drops dead faces)."""
        _one_thread()
        with self._lock.reading():
            _, labels = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return labels

    def nbytes(self) -> int:
        """Codes (in blocks of ``bbs`` faces), labels, centroids and the PQ's tables: what the
        lists hold, not the spare capacity of their vectors."""
        ivf = self._index
        invlists = ivf.invlists
        assert invlists is not None
        blocks = sum(int(-(-invlists.list_size(i) // ivf.bbs)) for i in range(ivf.nlist))
        return int(
            blocks * ivf.bbs * ivf.code_size + ivf.ntotal * 8 + ivf.nlist * ivf.d * 4 + ivf.pq.centroids.size() * 4
        )

    def serialize(self) -> np.ndarray:
        """The index without the faces removed so far (purged first: a snapshot holds no erased face)."""
        self.flush()
        with self._lock.reading():
            return faiss.serialize_index(self._index)

    @classmethod
    def deserialize(cls, data: np.ndarray, trained_on: int) -> IvfIndex:
        index = faiss.deserialize_index(data)  # already the concrete class (a downcast would not own it)
        if not isinstance(index, faiss.IndexIVFPQFastScan):
            raise ValueError(f"not an IVF fast-scan PQ index: {type(index).__name__}")
        index.nprobe = probes_for(index.nlist)
        return cls(index, trained_on)

    # -- writes -------------------------------------------------------------------------------
    def add(self, vectors: np.ndarray, labels: np.ndarray, bulk: bool = False) -> None:
        """``bulk``: a build's millions, on every core; else a request's few, on one thread."""
        if not bulk:
            _one_thread()
        if len(labels):
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            labels = np.ascontiguousarray(labels, dtype=np.int64)
            with self._lock.writing():
                self._index.add_with_ids(vectors, labels)

    def remove(self, labels: np.ndarray) -> None:
        """Drop the faces ``labels``: at once from answers (the caller's blocks no longer hold
        them live), from the lists by the purge thread within ``PURGE_DELAY_S``: removing means
        one pass over all ten million ids (25-100 ms), too long for a request to wait on."""
        if len(labels) == 0:
            return
        with self._pending_lock:
            self._pending.append(np.asarray(labels, dtype=np.int64))
            if self._purger is None or not self._purger.is_alive():
                self._purger = threading.Thread(target=self._purge_later, name="face-ivf-purge", daemon=True)
                self._purger.start()

    def _purge_later(self) -> None:
        time.sleep(PURGE_DELAY_S)  # deletions arriving meanwhile share the pass
        self.flush()

    def flush(self) -> int:
        """Remove every pending label from the lists now; returns how many went."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
        if not pending:
            return 0
        selector = faiss.IDSelectorBatch(np.concatenate(pending))
        _one_thread()
        with self._lock.writing():
            return int(self._index.remove_ids(selector))

    @property
    def pending(self) -> int:
        return sum(len(p) for p in self._pending)


def _one_thread() -> None:
    """This thread's faiss calls on one OpenMP thread. Per thread (OpenMP keeps the setting per
    calling thread): measured on this loaded 2-core machine, adding 3 faces took 0.04 ms on one
    thread and 30-50 ms on two, whose threads wait for each other; the bulk build keeps both."""
    faiss.omp_set_num_threads(1)
