"""The batcher's scheduling on stand-in models: who shares a pass, in what order, how long a lone
request waits, and that one bad input fails only its own request. (Real models: tests/integration.)"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from inference_service.engine.batcher import Batcher, Priority
from inference_service.engine.detection import Face


class FakeDetector:
    """One face per image whose box encodes the image's first pixel; records every pass."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.passes: list[list[int]] = []
        self.delay_s = delay_s
        self.gate = threading.Event()
        self.gate.set()

    def detect_batch(self, images):
        self.gate.wait()
        if any(image.ndim != 3 for image in images):
            raise ValueError("detect expects H x W x 3 uint8 RGB images")
        self.passes.append([int(image[0, 0, 0]) for image in images])
        time.sleep(self.delay_s)
        return [[Face((float(image[0, 0, 0]), 0.0, 10.0, 10.0), 0.99, np.zeros((5, 2)))] for image in images]


class FakeEmbedder:
    dim = 2

    def crops(self, image, faces):
        return np.stack([np.full((4, 4, 3), int(f.box[0]), np.uint8) for f in faces])

    def embed(self, chips):
        return np.stack([[float(c[0, 0, 0]), 1.0] for c in chips]).astype(np.float32)


def image(value: int) -> np.ndarray:
    return np.full((8, 8, 3), value, np.uint8)


def run_concurrently(calls):
    """Start every call at once; each one's result or exception, in order."""
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
        t.join(10)
    return results


@pytest.fixture
def detector():
    return FakeDetector()


@pytest.fixture
def batcher(detector):
    b = Batcher(detector, FakeEmbedder(), window_s=0.2, max_images=16)
    yield b
    b.close()


def test_concurrent_requests_share_one_pass_and_each_gets_its_own_result(batcher, detector):
    results = run_concurrently([lambda v=v: batcher.analyze([image(v)]) for v in range(1, 7)])
    assert len(detector.passes) == 1 and sorted(detector.passes[0]) == [1, 2, 3, 4, 5, 6]
    for v, result in enumerate(results, start=1):
        [[(face, vector)]] = result
        assert face.box[0] == v and vector[0] == v
    assert batcher.stats.passes == 1 and batcher.stats.largest_batch == 6


def test_detect_analyze_and_embed_jobs_meet_in_one_pass(batcher, detector):
    chips = np.full((2, 4, 4, 3), 9, np.uint8)
    detected, analyzed, embedded = run_concurrently(
        [
            lambda: batcher.detect([image(3)]),
            lambda: batcher.analyze([image(4), image(5)]),
            lambda: batcher.embed(chips),
        ]
    )
    assert batcher.stats.passes == 1
    assert [f.box[0] for f in detected[0]] == [3]
    assert [[v[0] for _, v in faces] for faces in analyzed] == [[4.0], [5.0]]
    assert embedded[:, 0].tolist() == [9.0, 9.0]


def test_a_lone_request_waits_at_most_the_window(detector):
    batcher = Batcher(detector, FakeEmbedder(), window_s=0.03, max_images=16)
    try:
        waits = []
        for v in range(5):
            started = time.perf_counter()
            batcher.detect([image(v)])
            waits.append(time.perf_counter() - started)
    finally:
        batcher.close()
    # It does wait for company (>= the window), and not much more: 0.1 s of slack for a loaded machine.
    assert min(waits) >= 0.03 * 0.9
    assert sorted(waits)[len(waits) // 2] < 0.03 + 0.1
    assert len(detector.passes) == 5


def test_a_full_batch_does_not_wait_for_the_window(detector):
    batcher = Batcher(detector, FakeEmbedder(), window_s=5.0, max_images=2)
    try:
        started = time.perf_counter()
        run_concurrently([lambda: batcher.detect([image(1)]), lambda: batcher.detect([image(2)])])
        assert time.perf_counter() - started < 2.0
    finally:
        batcher.close()


def test_photo_requests_go_before_background_work(detector):
    batcher = Batcher(detector, FakeEmbedder(), window_s=0.0, max_images=1)
    try:
        detector.gate.clear()  # the dispatcher holds the first job until every other one is queued
        first = threading.Thread(target=batcher.detect, args=([image(1)],))
        first.start()
        while batcher.stats.passes == 0:
            time.sleep(0.005)
        threads = [
            threading.Thread(target=batcher.detect, args=([image(10 + i)], Priority.BACKGROUND)) for i in range(3)
        ] + [threading.Thread(target=batcher.detect, args=([image(20 + i)], Priority.PHOTO)) for i in range(2)]
        for t in threads:
            t.start()
            time.sleep(0.02)  # each queued in turn: background ones first
        detector.gate.set()
        for t in [first, *threads]:
            t.join(10)
    finally:
        batcher.close()
    order = [p[0] for p in detector.passes]
    assert order == [1, 20, 21, 10, 11, 12]


def test_a_bad_input_fails_only_its_own_request(batcher, detector):
    bad = np.zeros((8, 8), np.uint8)  # grey, 2-D: the detector refuses it
    results = run_concurrently(
        [lambda: batcher.analyze([image(1)]), lambda: batcher.analyze([bad]), lambda: batcher.detect([image(2)])]
    )
    assert isinstance(results[1], ValueError)
    assert results[0][0][0][1][0] == 1.0
    assert results[2][0][0].box[0] == 2.0
    assert batcher.stats.retried_alone == 3


def test_a_closed_batcher_refuses_work(detector):
    batcher = Batcher(detector, FakeEmbedder(), window_s=0.0)
    batcher.close()
    with pytest.raises(RuntimeError):
        batcher.detect([image(1)])
