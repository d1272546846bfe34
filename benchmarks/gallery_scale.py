"""The gallery at 10 million faces (``python -m benchmarks.bench_gallery --scale``), and the two
fresh processes every start-up figure is measured with.

Faces are 128-d and shaped like dlib-resnet's real embeddings, as ``tests/support/face_vectors.py``
draws them: a shared direction (the real faces' mean has norm 0.92), a per-person offset and a
per-face offset, sized so that two faces of one person have cosine 0.95 and two people 0.83 on
average (measured on the 45 shared test faces). 1,000,000 people of 10 faces each.

1. The SQLite file is written directly (one transaction, not timed), as ``build_sqlite`` does.
2. ``prepare`` (a fresh process): ``Gallery`` over the file with ``FACE_INDEX=auto``: the load from
   the store, the IVF build, and the snapshot written at close (``cold_start_s``, ``ivf_build_s``,
   ``snapshot_write_s``).
3. ``measure`` (another fresh process): ``startup_s``: the start from the snapshot; the memory it
   holds for the gallery; ``search_ms`` (p50 and p95 of one face's ``Gallery.search``) and
   ``recall_at_1`` for new photos of enrolled people against the exact nearest face found by
   brute force over the same vectors; then the enroll/delete figures of ``measure_gallery``.
"""

from __future__ import annotations

import gc
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DIM = 128
EMBEDDER = "synthetic"
STAMP = "2026-01-01T00:00:00.000000+00:00"
IDENTITY_SPREAD, FACE_SPREAD = 0.38, 0.245  # see tests/support/face_vectors.py
FACES_10M = 10_000_000
PER_IDENTITY = 10
PROBES = 1000
TARGETS_10M = {
    "search_ms_10m": 5,
    "recall_at_1_10m": 0.995,
    "enroll_ms_10m": 20,
    "delete_ms_10m": 50,
    "gallery_ram_ratio_10m": 1.5,
    "startup_s_10m": 15,
}


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def centres(identities: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mean = _unit(rng.standard_normal((1, DIM)))[0]
    return (mean + IDENTITY_SPREAD * rng.standard_normal((identities, DIM), dtype=np.float32) / np.sqrt(DIM)).astype(
        np.float32
    )


def faces(centre_rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _unit(centre_rows + FACE_SPREAD * rng.standard_normal(centre_rows.shape, dtype=np.float32) / np.sqrt(DIM))


def build_structured_sqlite(path: Path, n: int, people: np.ndarray, per_identity: int = PER_IDENTITY) -> float:
    """Write ``n`` structured faces (``per_identity`` of each person) into a new gallery file."""
    from inference_service.gallery import SQLiteStore

    start = time.perf_counter()
    SQLiteStore(path, EMBEDDER, DIM).close()
    rng = np.random.default_rng(1)
    db = sqlite3.connect(str(path), isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-1000000")
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO identities(name, name_key, created_at) VALUES (?, ?, ?)",
            ((f"id{i:07d}", f"id{i:07d}", STAMP) for i in range(n // per_identity)),
        )
        chunk = 500_000
        for s in range(0, n, chunk):
            rows = np.arange(s, min(n, s + chunk))
            vectors = faces(people[rows // per_identity], rng)
            db.executemany(
                "INSERT INTO faces(face_id, identity, embedding, dim, embedder, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (f"{i:032x}", f"id{i // per_identity:07d}", v.tobytes(), DIM, EMBEDDER, STAMP)
                    for i, v in zip(rows.tolist(), vectors)
                ),
            )
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())
    return time.perf_counter() - start


# -- the two child processes ------------------------------------------------------------------
def prepare(path: str) -> dict:
    """Start cold (no snapshot), build the IVF, write the snapshot at close."""
    from inference_service.gallery import Gallery, SQLiteStore

    Path(path + ".snapshot").unlink(missing_ok=True)
    start = time.perf_counter()
    gallery = Gallery(SQLiteStore(path, EMBEDDER, DIM), EMBEDDER, DIM, index="auto")
    cold = time.perf_counter() - start
    start = time.perf_counter()
    has_ivf = gallery.index.wait_for_ann()
    ivf = time.perf_counter() - start
    faces_n = gallery.stats()["faces"]
    start = time.perf_counter()
    gallery.close()  # joins the snapshot writer (which may have begun once the IVF was ready)
    return {
        "faces": faces_n,
        "cold_start_s": round(cold, 1),
        "ivf": has_ivf,
        "ivf_build_s": round(ivf, 1),
        "snapshot_write_s": round(time.perf_counter() - start, 1),
        "snapshot_mb": round(Path(path + ".snapshot").stat().st_size / 2**20),
    }


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def search_figures(gallery, probes: np.ndarray, truth: np.ndarray) -> dict:
    """Per-face search times and recall@1 against the exact nearest face's identity."""
    times, hits = [], 0
    for i, probe in enumerate(probes):
        start = time.perf_counter()
        found = gallery.search(probe[None], 0.0)[0]
        times.append(time.perf_counter() - start)
        hits += found.identity == truth[i]
    ms = np.array(times) * 1000
    return {
        "search_ms_p50": round(float(np.percentile(ms, 50)), 2),
        "search_ms_p95": round(float(np.percentile(ms, 95)), 2),
        "recall_at_1": round(hits / len(probes), 4),
        "probes": len(probes),
    }


def exact_truth(index, probes: np.ndarray) -> np.ndarray:
    """The identity of each probe's most similar face, by brute force over every block."""
    best = np.full(len(probes), -np.inf, np.float32)
    who = np.full(len(probes), -1, np.int64)
    for block in index._view.blocks:
        vectors, ident = block.vectors[: block.rows], block.identity[: block.rows]
        for s in range(0, len(probes), 100):
            sims = probes[s : s + 100] @ vectors.T
            sims[:, ident < 0] = -np.inf
            top = sims.argmax(axis=1)
            value = sims[np.arange(len(top)), top]
            better = value > best[s : s + 100]
            best[s : s + 100][better] = value[better]
            who[s : s + 100][better] = ident[top[better]]
    return np.array([index.name_of(int(i)) for i in who])


def measure(path: str, n: int, rounds: int, probes_path: str | None) -> dict:
    """Start from the snapshot; memory, search and write figures of that process."""
    from benchmarks.bench_gallery import measure_gallery
    from inference_service.gallery import SQLiteStore

    probes = np.load(probes_path) if probes_path else None
    extra: dict = {}

    def after_start(gallery) -> None:
        extra["from_snapshot"] = gallery.from_snapshot
        extra["ivf"] = gallery.index.ann is not None
        if probes is not None:
            truth = exact_truth(gallery.index, probes)
            extra.update(search_figures(gallery, probes, truth))

    result = measure_gallery(lambda: SQLiteStore(path, EMBEDDER, DIM), n, rounds, after_start)
    return {**result, **extra}


def run_children(path: Path, n: int, rounds: int, probes: Path | None = None, timeout: int = 7200) -> dict:
    result = {}
    for mode, args in (("prepare", [str(path)]), ("measure", [str(path), str(n), str(rounds), str(probes or "")])):
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.gallery_scale", mode, *args],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"gallery {mode} child failed ({proc.returncode}): {proc.stderr.strip()[-3000:]}")
        result.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    return result


def scale_figures(n: int = FACES_10M, rounds: int = 30, folder: str | None = None) -> dict:
    people = centres(n // PER_IDENTITY)
    rng = np.random.default_rng(2)
    with tempfile.TemporaryDirectory(prefix="bench-gallery-10m-", dir=folder) as tmp:
        path = Path(tmp) / "gallery.sqlite3"
        build_s = build_structured_sqlite(path, n, people)
        probes_path = Path(tmp) / "probes.npy"
        np.save(probes_path, faces(people[rng.integers(0, len(people), PROBES)], rng))
        del people
        gc.collect()
        result = run_children(path, n, rounds, probes_path)
        result.update(build_s=round(build_s, 1), file_mb=round(path.stat().st_size / 2**20))
    figures = {
        "search_ms_10m": result["search_ms_p50"],
        "recall_at_1_10m": result["recall_at_1"],
        "enroll_ms_10m": result["enroll_ms"],
        "delete_ms_10m": result["delete_ms"],
        "gallery_ram_ratio_10m": result["rss_ratio"],
        "startup_s_10m": result["startup_s"],
    }
    return {"scale_10m": result, **figures, "targets_10m": TARGETS_10M}


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "prepare":
        print(json.dumps(prepare(args[0])))
    elif mode == "measure":
        print(json.dumps(measure(args[0], int(args[1]), int(args[2]), args[3] or None)))
