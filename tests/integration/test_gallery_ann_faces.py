"""On every shared test face, the approximate (IVF) gallery answers what the exact one answers.

The labelled faces are embedded by the real engine (dlib-resnet); the gallery people's faces are
enrolled among 20,000 synthetic faces of 2,000 other people drawn around the real faces' own
mean direction (``support.face_vectors``), so that the IVF has lists to miss faces in. Each face
of every photo (gallery, probes, hard, multi, resolution, aligned) is then searched in both.
"""

from __future__ import annotations

import numpy as np
import pytest

from inference_service.engine.images import load_image
from inference_service.gallery import FaceRecord, Gallery, MemoryStore

from support.face_vectors import structured

STAMP = "2026-01-01T00:00:00.000000+00:00"


def _overlap(a, b) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


@pytest.fixture(scope="module")
def embedded(engine, manifest):
    """(manifest identity or "?", role, unit embedding) of every detected labelled face."""
    out = []
    for row in manifest:
        if row.role == "video":
            continue
        for found in engine.analyze(load_image(row.path.read_bytes())):
            label = max(row.faces, key=lambda f: _overlap(found.face.box, f.box), default=None)
            if label is not None and _overlap(found.face.box, label.box) > 0:
                out.append((label.identity, row.role, np.asarray(found.embedding, np.float32)))
    assert len(out) >= 40
    return out


def test_every_shared_face_gets_the_same_identity_or_unknown_from_the_ivf(engine, embedded):
    dim = engine.embedder.dim
    threshold = engine.threshold
    real = np.stack([v for _, _, v in embedded])
    distractors, who, _ = structured(2000, 10, dim, seed=7, mean=real.mean(axis=0))
    records = [
        FaceRecord(f"s{i:031d}", f"synthetic{p}", v, engine.embedder.name, STAMP)
        for i, (p, v) in enumerate(zip(who.tolist(), distractors))
    ]
    records += [
        FaceRecord(f"r{i:031d}", name, v, engine.embedder.name, STAMP)
        for i, (name, role, v) in enumerate(embedded)
        if role == "gallery"
    ]
    galleries = {}
    for kind in ("exact", "ivf"):
        store = MemoryStore()
        store.add_faces(records)
        galleries[kind] = Gallery(store, engine.embedder.name, dim, index=kind)
    assert galleries["ivf"].index.wait_for_ann(300) and galleries["exact"].index.ann is None
    exact = galleries["exact"].search(real, threshold)
    approx = galleries["ivf"].search(real, threshold)
    named = 0
    for (label, role, _), want, got in zip(embedded, exact, approx):
        assert got.identity == want.identity, (label, role, want, got)
        if want.identity is not None:
            named += 1
            assert got.similarity == pytest.approx(want.similarity, abs=1e-5)
    assert named >= 20  # the comparison covers recognised faces, not only unknowns
