"""``gpu_photos_per_s_1080p``: 16 clients at once, each sending 1080p photos to recognise, one engine.

Each client is a thread that runs exactly what an API worker runs for ``POST /recognize``
(``analysis.photos.recognize``: check the header, decode the JPEG, detect, embed, search the
gallery), back to back for a fixed time. The HTTP layer is left out: it is the same with or
without a GPU and costs ~1 ms a request (``bench_http``). Measured with shared passes on
(``FACE_BATCH``, the GPU default) and off, interleaved, so the two are compared under the same load.
"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np

CLIENTS = 16


def _jpeg(image_rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def clients_run(engine, gallery, data: bytes, seconds: float, clients: int = CLIENTS) -> dict:
    """Photos/s and latency percentiles of ``clients`` threads recognising ``data`` for ``seconds``."""
    from inference_service.analysis import photos

    limits = photos.PixelLimits(per_image=40_000_000, per_request=100_000_000)
    latencies: list[float] = []
    faces: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client() -> None:
        start.wait()
        while time.perf_counter() < stop_at[0]:
            began = time.perf_counter()
            answer = photos.recognize(engine, gallery, data, limits, engine.threshold)
            took = time.perf_counter() - began
            with lock:
                latencies.append(took)
                faces.append(len(answer["faces"]))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    ms = np.array(latencies) * 1000.0
    return {
        "photos_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "photos": len(latencies),
        "faces_per_photo": sorted(set(faces)),
    }


def measure(engine, image_rgb: np.ndarray, seconds: float, rounds: int, window_ms: float = 4.0) -> dict:
    """Shared passes on and off, ``rounds`` times each, interleaved; the median round of each."""
    from inference_service.gallery import Gallery, MemoryStore

    data = _jpeg(image_rgb)
    gallery = Gallery(MemoryStore(), engine.embedder.name, engine.embedder.dim)
    found = engine.analyze(image_rgb)
    if found:
        gallery.enroll("subject", np.stack([found[0].embedding]), [found[0].face.box])
    clients_run(engine, gallery, data, min(2.0, seconds))  # warm-up: CUDA kernels, allocator
    runs: dict[str, list[dict]] = {"shared": [], "alone": []}
    for _ in range(rounds):
        for mode in ("shared", "alone"):
            if mode == "shared":
                engine.share_passes(window_ms / 1000.0, CLIENTS)
            try:
                runs[mode].append(clients_run(engine, gallery, data, seconds))
                if engine.batcher is not None:
                    runs[mode][-1]["passes"] = engine.batcher.stats.passes
            finally:
                engine.stop_sharing()
    return {mode: sorted(r, key=lambda x: x["photos_per_s"])[len(r) // 2] for mode, r in runs.items()}
