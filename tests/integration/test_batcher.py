"""Shared batched passes with the real models on the shared faces (forced on, as on a CPU it is off).

Batching may change float rounding (a batch of chips through the same convolutions), never what is
found: the same faces, boxes to a thousandth of a pixel, embeddings equal to 1e-5 in cosine.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from inference_service.api.app import create_app
from inference_service.config import Settings
from inference_service.engine import load_image
from inference_service.gallery import Gallery, MemoryStore

ROLES = ("gallery", "probe", "multi")


@pytest.fixture(scope="module")
def photos(manifest):
    rows = [row for row in manifest if row.role in ROLES][:8]
    return [load_image(row.path.read_bytes()) for row in rows]


@pytest.fixture
def shared(engine):
    batcher = engine.share_passes(window_s=0.5, max_images=16)
    yield batcher
    engine.stop_sharing()


def concurrently(calls):
    results: list = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def one(i, call):
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return results


def assert_same_faces(alone, batched):
    assert len(alone) == len(batched)
    for a, b in zip(alone, batched):
        assert np.allclose(a.face.box, b.face.box, atol=1e-3)
        assert np.allclose(a.face.landmarks, b.face.landmarks, atol=1e-3)
        assert float(a.embedding @ b.embedding) > 1 - 1e-5


def test_concurrent_requests_share_a_pass_with_the_results_of_running_alone(engine, photos, request):
    alone = [engine.analyze(photo) for photo in photos]
    assert sum(len(faces) for faces in alone) >= len(photos)
    batcher = request.getfixturevalue("shared")
    batched = concurrently([lambda p=p: engine.analyze(p) for p in photos])
    # Each request got its own faces back, as found alone, from fewer passes than requests.
    for a, b in zip(alone, batched):
        assert_same_faces(a, b)
    assert batcher.stats.jobs == len(photos)
    assert batcher.stats.passes < len(photos)


def test_a_bad_image_fails_only_its_request(engine, photos, shared):
    grey = np.zeros((64, 64), np.uint8)
    results = concurrently(
        [lambda: engine.analyze(photos[0]), lambda: engine.detect(grey), lambda: engine.analyze(photos[1])]
    )
    assert isinstance(results[1], ValueError)
    assert len(results[0]) >= 1 and len(results[2]) >= 1
    assert shared.stats.retried_alone == 3


def test_the_api_answers_the_same_with_shared_passes(engine, faces_dir, manifest):
    """/recognize and /verify through the API, batching on, against the engine alone."""
    from fastapi.testclient import TestClient

    row = next(r for r in manifest if r.role == "probe")
    data = row.path.read_bytes()
    gallery = Gallery(MemoryStore(), engine.embedder.name, engine.embedder.dim)
    expected = engine.analyze(load_image(data))
    gallery.enroll("someone", np.stack([expected[0].embedding]), [expected[0].face.box])
    app = create_app(
        Settings(embedder="dlib-resnet", batch="on", batch_window_ms=20, workers=4), engine=engine, gallery=gallery
    )
    with TestClient(app) as client:
        assert engine.batcher is not None
        answers = concurrently([lambda: client.post("/recognize", files={"image": ("p.jpg", data)}) for _ in range(4)])
        verified = client.post("/verify", files={"image_a": ("a.jpg", data), "image_b": ("b.jpg", data)})
    assert engine.batcher is None  # the app stops what it started
    for answer in answers:
        assert answer.status_code == 200, answer.text
        faces = answer.json()["faces"]
        assert len(faces) == len(expected)
        assert faces[0]["identity"] == "someone" and faces[0]["similarity"] > 0.9999
    assert verified.status_code == 200 and verified.json()["similarity"] > 0.9999
