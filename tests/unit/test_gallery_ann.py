"""The approximate (IVF) search of large galleries against the exact search on the same faces.

Synthetic galleries shaped like real embeddings (``support.face_vectors``: identities of several
faces in the narrow cone dlib's embeddings occupy), through real ``FaceIndex`` objects.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from inference_service.gallery import FaceRecord, FaceTable
from inference_service.gallery import index as index_module
from inference_service.gallery.index import FaceIndex

from support.face_vectors import faces_of, strangers, structured

DIM = 128  # dlib-resnet's, whose embeddings the synthetic faces imitate
THRESHOLD = 0.926  # dlib-resnet's default (registry.py)


def record(face_id: str, name: str, vector: np.ndarray) -> FaceRecord:
    return FaceRecord(face_id, name, vector, "", "2026-01-01T00:00:00+00:00")


def table(vectors: np.ndarray, who: np.ndarray, order: np.ndarray | None = None) -> FaceTable:
    order = np.arange(len(vectors)) if order is None else order
    n = len(order)
    return FaceTable(
        face_ids=np.array([f"{i:032x}".encode() for i in order], dtype="S32"),
        identity=who[order].astype(np.int32),
        names=[f"person{i}" for i in range(int(who.max()) + 1)],
        embeddings=vectors[order],
        created_at=np.zeros(n, "datetime64[us]"),
        boxes=np.full((n, 4), np.nan, np.float32),
    )


@pytest.fixture(scope="module")
def gallery():
    """2,000 people with 1 to 19 faces each (about 20,000 faces), and probes."""
    rng = np.random.default_rng(3)
    counts = rng.integers(1, 20, 2000)
    vectors, who, centres = structured(2000, counts, DIM, seed=1)
    known = faces_of(centres, rng.integers(0, 2000, 400), rng)
    unknown = strangers(centres, 200, rng)
    exact = FaceIndex.from_table(table(vectors, who), DIM, kind="exact")
    approx = FaceIndex.from_table(table(vectors, who), DIM, kind="ivf")
    assert approx.wait_for_ann(300)
    return vectors, who, centres, known, unknown, exact, approx


def test_recall_at_1_against_exact_search_and_the_similarities_are_exact(gallery):
    vectors, who, centres, known, unknown, exact, approx = gallery
    assert approx.ann is not None and approx.ann.ivf.ntotal == len(vectors)
    want, got = exact.search(known, 5), approx.search(known, 5)
    recall = np.mean([w[0][0] == g[0][0] for w, g in zip(want, got)])
    assert recall >= 0.995, recall
    for w, g in zip(want, got):
        truth = dict(w)
        for name, similarity in g:  # every similarity returned is that identity's exact best
            if name in truth:
                assert similarity == pytest.approx(truth[name], abs=1e-5)
    # Strangers: the same decision (unknown) at the threshold as the exact search.
    for w, g in zip(exact.search(unknown, 1), approx.search(unknown, 1)):
        assert (w[0][1] >= THRESHOLD) == (g[0][1] >= THRESHOLD)
        if w[0][1] >= THRESHOLD:
            assert w[0][0] == g[0][0]


def test_replicas_loading_the_same_faces_in_another_order_answer_the_same(gallery):
    vectors, who, centres, known, unknown, exact, approx = gallery
    shuffled = np.random.default_rng(9).permutation(len(vectors))
    other = FaceIndex.from_table(table(vectors, who, shuffled), DIM, kind="ivf")
    assert other.wait_for_ann(300)
    probes = np.concatenate([known[:100], unknown[:50]])
    first, second = approx.search(probes, 5), other.search(probes, 5)
    for a, b in zip(first, second):
        assert [n for n, _ in a] == [n for n, _ in b]
        assert np.allclose([s for _, s in a], [s for _, s in b], atol=1e-6)


def test_enroll_and_delete_change_the_ivf_in_place():
    rng = np.random.default_rng(4)
    vectors, who, centres = structured(500, 8, DIM, seed=2)
    index = FaceIndex.from_table(table(vectors, who), DIM, kind="ivf")
    assert index.wait_for_ann(300)
    ivf = index.ann.ivf
    newcomer = faces_of(strangers(centres, 1, rng), np.zeros(3, int), rng)
    index.add([record(f"new{i}", "Newcomer", v) for i, v in enumerate(newcomer)])
    assert index.search(newcomer[:1], 1)[0][0][0] == "Newcomer"
    assert ivf.ntotal == len(vectors) + 3
    probe = faces_of(centres, np.array([7]), rng)
    assert index.search(probe, 1)[0][0][0] == "person7"
    assert index.remove_identity("person7") == 8
    assert ivf.pending == 8  # still in the lists until the purge pass, but never answered
    assert all(name != "person7" for name, _ in index.search(probe, 5)[0])
    ivf.flush()
    assert ivf.ntotal == len(vectors) + 3 - 8
    assert index.remove_faces("Newcomer", ["new0"]) == 1
    assert index.ann.ivf is ivf  # no rebuild: both writes went into the same IVF
    deadline = time.monotonic() + 30
    while ivf.pending and time.monotonic() < deadline:  # the purge thread's pass
        time.sleep(0.05)
    assert index.stats()["faces"] == ivf.ntotal


def test_writes_during_a_background_build_are_in_the_new_index(monkeypatch):
    rng = np.random.default_rng(5)
    vectors, who, centres = structured(400, 5, DIM, seed=3)
    gate = threading.Event()
    built = []
    real_build = index_module.ann_search.build

    def held_build(blocks, faces):  # the writes below land while the build holds an older view
        gate.wait(30)
        built.append(faces)
        return real_build(blocks, faces)

    monkeypatch.setattr(index_module.ann_search, "build", held_build)
    index = FaceIndex.from_table(table(vectors[:1500], who[:1500]), DIM, kind="exact")
    index.kind = "ivf"  # the next write crosses IVF_MIN_FACES and starts a build
    index.add([record(f"f{i}", f"person{who[i]}", vectors[i]) for i in range(1500, 2000)])
    assert index.building
    late = faces_of(centres, np.array([0, 0]), rng)
    index.add([record(f"late{i}", "Late", v) for i, v in enumerate(late)])
    gone = faces_of(centres, np.array([3]), rng)
    assert index.remove_identity("person3") == 5
    gate.set()
    assert index.wait_for_ann(300)
    assert built == [2000]  # the view the build read: before the late writes
    index.ann.ivf.flush()
    assert index.ann.ivf.ntotal == index.stats()["faces"] == 2000 + 2 - 5
    assert index.search(late[:1], 1)[0][0][0] == "Late"
    assert all(name != "person3" for name, _ in index.search(gone, 5)[0])


def test_auto_searches_exactly_below_its_size(monkeypatch):
    vectors, who, _ = structured(300, 5, DIM, seed=4)
    index = FaceIndex.from_table(table(vectors, who), DIM, kind="auto")
    assert not index.wait_for_ann(1) and index.ann is None
    monkeypatch.setattr(index_module, "AUTO_MIN_FACES", 1000)
    index = FaceIndex.from_table(table(vectors, who), DIM, kind="auto")
    assert index.wait_for_ann(300)
