"""Replica lag: how long after one API replica answers 201 the others list the new person.

Starts a throwaway PostgreSQL (tests/pg_server.py) and three real API processes on loopback
sharing it (dlib-resnet, one torch thread each, the default FACE_SYNC_POLL_S=2, so what is
measured is the NOTIFY path, not the poll). Each round enrolls a new name through the first
replica; a watcher thread per other replica lists GET /identities every 10 ms and records when
the name first appears. ``replica_lag_ms_p99`` = 99th percentile over rounds and watchers of
(first listing - 201 received), in ms (target <= 1000); it includes up to one 10 ms listing
interval and a listing request's own time. Skipped when the PostgreSQL binaries are missing.

    python -m benchmarks.bench_replicas [--quick]
"""

from __future__ import annotations

import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

from benchmarks.timing import bench_main, cpu_model
from tests.support.faces import faces_dir_path
from tests.support.live_servers import start_api
from tests.support.pg_server import pg_bin_dir, start_postgres

LIST_EVERY_S = 0.01


def _watch(url: str, name: str, seen: dict[str, float], stop: threading.Event) -> None:
    session = requests.Session()
    while not stop.is_set():
        listed = session.get(f"{url}/identities", timeout=10).json()["identities"]
        if any(item["name"] == name for item in listed):
            seen[url] = time.perf_counter()
            return
        time.sleep(LIST_EVERY_S)


def run(quick: bool = False) -> dict:
    if pg_bin_dir() is None:
        return {"skipped": "PostgreSQL binaries not found (apt-get install postgresql)", "replica_lag_ms_p99": None}
    rounds = 15 if quick else 100
    photo = (faces_dir_path() / "gallery/obama/1.jpg").read_bytes()
    server = start_postgres()
    apis = []
    try:
        url = server.create_database("bench_replicas")
        with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(3) as pool:
            apis = list(pool.map(lambda n: start_api(Path(tmp), url, name=n, FACE_WORKERS="1"), ["r1", "r2", "r3"]))
            writer, others = apis[0], apis[1:]
            lags: list[float] = []
            session = requests.Session()
            for i in range(rounds):
                name = f"lag{i}"
                seen: dict[str, float] = {}
                stop = threading.Event()
                watchers = [threading.Thread(target=_watch, args=(o.url, name, seen, stop)) for o in others]
                for w in watchers:
                    w.start()
                answer = session.post(
                    f"{writer.url}/identities/{name}/faces",
                    files={"image": ("1.jpg", photo, "image/jpeg")},
                    timeout=120,
                )
                answered = time.perf_counter()
                answer.raise_for_status()
                for w in watchers:
                    w.join(timeout=30)
                stop.set()
                if len(seen) != len(others):
                    raise RuntimeError(f"round {i}: a replica did not list {name} within 30 s")
                lags += [max(0.0, (t - answered) * 1000) for t in seen.values()]
    finally:
        for api in apis:
            api.stop()
        server.remove()
    samples = np.asarray(lags)
    return {
        "replica_lag_ms_p99": round(float(np.percentile(samples, 99)), 1),
        "replica_lag_ms_p50": round(float(np.percentile(samples, 50)), 1),
        "replica_lag_ms_max": round(float(samples.max()), 1),
        "rounds": rounds,
        "samples": len(lags),
        "cpu": cpu_model(),
    }


def markdown(result: dict) -> str:
    if "skipped" in result:
        return f"Replica lag skipped: {result['skipped']}"
    return "\n".join(
        [
            f"Three API replicas on one PostgreSQL, loopback; {result['rounds']} enrollments through one, "
            f"{result['samples']} observations by the other two. {result['cpu']}",
            "",
            "| figure | ms | target |",
            "| --- | ---: | ---: |",
            f"| replica_lag_ms_p50 | {result['replica_lag_ms_p50']:.1f} | |",
            f"| replica_lag_ms_p99 | {result['replica_lag_ms_p99']:.1f} | <= 1000 |",
            f"| replica_lag_ms_max | {result['replica_lag_ms_max']:.1f} | |",
        ]
    )


if __name__ == "__main__":
    bench_main(__doc__, run, markdown, "15 enrollments instead of 100")
