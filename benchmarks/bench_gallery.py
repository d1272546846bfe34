"""The gallery at scale: writes, memory and start-up with a million faces, search at 100k.

Synthetic 128-d random unit vectors, 100 faces per identity (10 for the search figure, as
``bench_http`` has always used), the project's own ``Gallery`` over a real store:

1. ``startup_s_1m``: ``Gallery`` over a 1,000,000-face SQLite file started from its snapshot, in a
   fresh process so that its memory figures count nothing else. The file is built first with one
   ``executemany`` transaction, then opened once cold (no snapshot: the load from the store and,
   as ``FACE_INDEX=auto`` asks at this size, the IVF build), which writes the snapshot at close;
   those times are reported beside it (``benchmarks/gallery_scale.py``).
2. ``gallery_ram_ratio_1m``: bytes of every column of every face the in-memory index holds / the
   raw float32 vectors (1M x 128 x 4 = 512 MB), after the load and after the writes (the larger);
   beside it the address space reserved for a new block's unwritten rows, and the RSS growth of
   that process across the load.
3. ``enroll_ms_1m`` / ``delete_ms_1m``: median wall time of ``Gallery.enroll`` (3 faces, new and
   existing identities alternately) and ``Gallery.delete_identity`` (100 faces), store commit
   included, on that gallery.
4. ``startup_s_1m_postgres``: the same start-up from PostgreSQL when ``--postgres URL`` or
   ``FACE_BENCH_POSTGRES`` is given and the PostgreSQL store is present (loaded into it first).
5. ``rename_ms_1m`` / ``merge_ms_1m`` / ``move_ms_1m``: median wall time of renaming a 100-face
   identity, merging one into another and moving one face, store commit and index included.
   Over PostgreSQL also ``with_replica_sync``: the same with the replica sync attached, as the API runs.
6. ``report_s_10k_identities``: ``GET /gallery/report``'s work over 10,000 identities of 10 faces
   in a SQLite file: the table read and the pairs and flags.
7. ``search_ms_100k``: median time of one face's ``Gallery.search`` over 100k faces, interleaved
   with the design it replaced (one matrix grouped by identity, ``maximum.reduceat``) on the same
   vectors, so "no slower than before" is measured side by side.

    python -m benchmarks.bench_gallery [--quick] [--postgres URL]
    python -m benchmarks.bench_gallery --scale [--scale-dir DIR]   # the 10M figures only
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from benchmarks.timing import interleaved, machine, machine_line, median_ms

REPO = Path(__file__).resolve().parents[1]
DIM = 128
FACES_1M = 1_000_000
PER_IDENTITY = 100
EMBEDDER = "synthetic"
STAMP = "2026-01-01T00:00:00.000000+00:00"
# The report's threshold: dlib-resnet's default (see inference_service/registry.py), the embedder
# whose 128-d vectors these are shaped like.
REPORT_THRESHOLD = 0.926
TARGETS = {
    "rename_ms_1m": 20,
    "merge_ms_1m": 50,
    "move_ms_1m": 20,
    "report_s_10k_identities": 2,
    "enroll_ms_1m": 20,
    "delete_ms_1m": 50,
    "gallery_ram_ratio_1m": 1.3,
    "startup_s_1m": 3,
    "search_ms_100k": 3.2,
}


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def build_sqlite(path: Path, n: int, dim: int = DIM, per_identity: int = PER_IDENTITY) -> float:
    """Write ``n`` faces into a new gallery file in one transaction; returns the seconds it took."""
    from inference_service.gallery import SQLiteStore

    start = time.perf_counter()
    SQLiteStore(path, EMBEDDER, dim).close()  # the schema and the embedder, as the service writes them
    vectors = unit_vectors(n, dim, seed=0)
    db = sqlite3.connect(str(path), isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-1000000")  # 1 GB: index upkeep without re-reading pages
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO identities(name, name_key, created_at, uid) VALUES (?, ?, ?, ?)",
            ((f"id{i:07d}", f"id{i:07d}", STAMP, f"{i:032x}") for i in range((n + per_identity - 1) // per_identity)),
        )
        db.executemany(
            "INSERT INTO faces(face_id, identity, embedding, dim, embedder, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            ((f"{i:032x}", f"id{i // per_identity:07d}", vectors[i].tobytes(), dim, EMBEDDER, STAMP) for i in range(n)),
        )
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # as the service leaves it: no WAL to fold later
    finally:
        db.close()
    # Written with synchronous=OFF: flush it now, or the first fsync of a timed write (the WAL
    # checkpoint after a delete) pays for the whole file (0.4 s measured).
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())
    return time.perf_counter() - start


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure_gallery(open_store, n: int, rounds: int, after_start=None, per_identity: int | None = None) -> dict:
    """Start-up, memory, enroll and delete figures of a ``Gallery`` over ``open_store()``
    (``after_start(gallery)``: more figures taken before the writes)."""
    import gc

    from inference_service.gallery import FaceRecord, Gallery

    gc.collect()
    rss_before = _rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    gallery = Gallery(open_store(), EMBEDDER, DIM)
    startup, startup_cpu = time.perf_counter() - start, time.process_time() - cpu
    gc.collect()
    rss_after = _rss_mb()
    assert gallery.stats()["faces"] == n, gallery.stats()
    per_identity = per_identity or int(n // len(gallery.identities()))
    raw = n * DIM * 4
    held = gallery._index.nbytes()
    rng = np.random.default_rng(7)
    enroll, delete, index_enroll, index_delete = [], [], [], []
    try:
        if after_start is not None:
            after_start(gallery)
        for i in range(rounds):
            vectors = rng.standard_normal((3, DIM), dtype=np.float32)
            name = f"new{i:04d}" if i % 2 == 0 else f"id{i:07d}"
            t = time.perf_counter()
            gallery.enroll(name, vectors, [(0.0, 0.0, 10.0, 10.0)] * 3)
            enroll.append(time.perf_counter() - t)
        for i in range(rounds):
            name = f"id{(n // per_identity) - 1 - i:07d}"
            t = time.perf_counter()
            assert gallery.delete_identity(name)
            delete.append(time.perf_counter() - t)
        # The in-memory share alone: the same change applied to the index without the store
        # (as a replica applies another's write), on identities the store still holds.
        for i in range(rounds):
            name = f"id{n // per_identity // 2 + i:07d}"  # untouched by the enrolls above
            t = time.perf_counter()
            assert gallery.apply_removed_identity(name) == per_identity
            index_delete.append(time.perf_counter() - t)
            records = [FaceRecord(uuid.uuid4().hex, f"applied{i}", v, EMBEDDER, STAMP) for v in unit_vectors(3, DIM, i)]
            t = time.perf_counter()
            assert gallery.apply_added(records) == 3
            index_enroll.append(time.perf_counter() - t)
        curated = curation_times(gallery, n, rounds)
        held_after = gallery._index.nbytes()
        reserved_after = gallery._index.nbytes(reserved=True)  # a fresh tail block's unwritten rows too
    finally:
        gallery.close()
    return {
        "faces": n,
        "startup_s": round(startup, 2),
        "from_snapshot": gallery.from_snapshot,
        "startup_cpu_s": round(startup_cpu, 2),  # beside the wall time: this machine is shared
        "index_mb": round(held / 2**20, 1),
        "raw_vectors_mb": round(raw / 2**20, 1),
        "ram_ratio": round(held / raw, 3),
        "ram_ratio_after_writes": round(held_after / raw, 3),
        "reserved_ratio_after_writes": round(reserved_after / raw, 3),
        "rss_growth_mb": round(rss_after - rss_before, 1),
        "rss_ratio": round((rss_after - rss_before) * 2**20 / raw, 3),
        "enroll_ms": median_ms(enroll),
        "enroll_ms_max": round(max(enroll) * 1000, 2),
        "delete_ms": median_ms(delete),
        "delete_ms_max": round(max(delete) * 1000, 2),
        "index_enroll_ms": median_ms(index_enroll),
        "index_delete_ms": median_ms(index_delete),
        **curated,
        "rounds": rounds,
    }


def curation_times(gallery, n: int, rounds: int, first: int = 0) -> dict:
    """Median ms of a rename (a 100-face identity), a merge (100 faces into another) and a move
    (one face), store commit and index included, on identities the other writes left alone
    (``first`` shifts them, for a second measurement on the same gallery)."""
    from inference_service.gallery import curation

    quarter = n // PER_IDENTITY // 4
    rename, merge, move = [], [], []
    for i in range(rounds):
        t = time.perf_counter()
        curation.rename(gallery, f"id{quarter + first + i:07d}", f"renamed{first + i:04d}")
        rename.append(time.perf_counter() - t)
    for i in range(rounds):
        source, target = f"id{quarter + first + 100 + 2 * i:07d}", f"id{quarter + first + 101 + 2 * i:07d}"
        t = time.perf_counter()
        curation.merge(gallery, source, target)
        merge.append(time.perf_counter() - t)
    for i in range(rounds):
        source, target = f"id{3 * quarter + first + i:07d}", f"id{3 * quarter + first + 100 + i:07d}"
        face = gallery.faces_of(source)[0].face_id
        t = time.perf_counter()
        curation.move_face(gallery, source, face, target)
        move.append(time.perf_counter() - t)
    return {"rename_ms": median_ms(rename), "merge_ms": median_ms(merge), "move_ms": median_ms(move)}


def report_figures(identities: int = 10_000, per_identity: int = 10, rounds: int = 3) -> dict:
    """``GET /gallery/report``'s work over a SQLite gallery of ``identities`` x ``per_identity``
    faces: the table read from the store, then the pairs and flags (random vectors: few of either)."""
    from inference_service.gallery import SQLiteStore
    from inference_service.gallery.report import gallery_report

    n = identities * per_identity
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        path = Path(tmp) / "gallery.sqlite3"
        build_sqlite(path, n, per_identity=per_identity)
        store = SQLiteStore(path, EMBEDDER, DIM)
        try:
            total, compute = [], []
            for _ in range(rounds):
                t = time.perf_counter()
                table = store.load_table(DIM)
                c = time.perf_counter()
                report = gallery_report(table, REPORT_THRESHOLD)
                done = time.perf_counter()
                total.append(done - t)
                compute.append(done - c)
        finally:
            store.close()
    return {
        "identities": identities,
        "faces": n,
        "report_s": round(float(np.median(total)), 3),
        "compute_s": round(float(np.median(compute)), 3),
        "pairs": len(report.pairs),
        "flagged": len(report.flagged),
        "rounds": rounds,
    }


def sqlite_figures(n: int, rounds: int) -> dict:
    """Built, started cold once (which writes the snapshot), then measured from the snapshot in a
    fresh process (``gallery_scale.run_children``)."""
    from benchmarks.gallery_scale import run_children

    with tempfile.TemporaryDirectory(prefix="bench-gallery-") as tmp:
        path = Path(tmp) / "gallery.sqlite3"
        build_s = build_sqlite(path, n)
        size_mb = path.stat().st_size / 2**20
        result = run_children(path, n, rounds, timeout=1800)
    result.update(build_s=round(build_s, 1), file_mb=round(size_mb, 1))
    return result


def postgres_figures(url: str, n: int, rounds: int) -> dict:
    """The same measurements on PostgreSQL, through the store factory (absent: skipped)."""
    try:
        from inference_service.gallery.factory import open_store
    except ImportError:
        return {"skipped": "no PostgreSQL store (inference_service.gallery.factory) in this checkout"}
    from inference_service.gallery import FaceRecord

    store = open_store(url, EMBEDDER, DIM)
    try:
        if store.load_table(DIM).embeddings.shape[0] != n:
            vectors = unit_vectors(n, DIM, seed=0)
            for s in range(0, n, 20_000):
                store.add_faces(
                    [
                        FaceRecord(f"{i:032x}", f"id{i // PER_IDENTITY:07d}", vectors[i], EMBEDDER, STAMP)
                        for i in range(s, min(n, s + 20_000))
                    ]
                )
    finally:
        store.close()
    result = measure_gallery(lambda: open_store(url, EMBEDDER, DIM), n, rounds)
    return {**result, "with_replica_sync": synced_curation_times(url, n, rounds)}


def synced_curation_times(url: str, n: int, rounds: int) -> dict:
    """Curation as the API runs it on PostgreSQL: with this process's replica sync attached (it
    reads the change log inside each write; its listener wakes on the write's notification)."""
    from inference_service.gallery import Gallery
    from inference_service.gallery.factory import open_store
    from inference_service.gallery.replica import start_sync

    gallery = Gallery(open_store(url, EMBEDDER, DIM), EMBEDDER, DIM)
    sync = start_sync(gallery, 2.0)
    try:
        return curation_times(gallery, n, rounds, first=1000)
    finally:
        if sync is not None:
            sync.stop()
        gallery.close()


def _reduceat_search(matrix: np.ndarray, starts: np.ndarray, query: np.ndarray, top_k: int = 5) -> list[int]:
    """The search this index replaced: one matrix grouped by identity, best face per group."""
    sims = np.clip(query @ matrix.T, -1.0, 1.0)
    per_identity = np.maximum.reduceat(sims, starts, axis=1)
    k = min(top_k, per_identity.shape[1])
    top = np.argpartition(-per_identity, k - 1, axis=1)[:, :k]
    return [list(cols[np.argsort(-row[cols])]) for row, cols in zip(per_identity, top)]


def search_figures(n: int, rounds: int, per_identity: int = 10) -> dict:
    from inference_service.gallery import FaceRecord, Gallery, MemoryStore

    vectors = unit_vectors(n, DIM, seed=0)
    store = MemoryStore()
    store.add_faces(
        [FaceRecord(f"{i:08d}", f"id{i // per_identity:07d}", vectors[i], EMBEDDER, STAMP) for i in range(n)]
    )
    gallery = Gallery(store, EMBEDDER, DIM)
    starts = np.arange(0, n, per_identity)
    query = unit_vectors(1, DIM, seed=1)
    ours = gallery.search(query, 0.9)[0]
    before = _reduceat_search(vectors, starts, query)[0]
    same = [c.identity for c in ours.candidates] == [f"id{i:07d}" for i in before]
    times = interleaved(
        {"ours": lambda: gallery.search(query, 0.9), "before": lambda: _reduceat_search(vectors, starts, query)},
        rounds=rounds,
        warmup=3,
    )
    return {
        "faces": n,
        "per_identity": per_identity,
        "rounds": rounds,
        "search_ms": median_ms(times["ours"]),
        "before_ms": median_ms(times["before"]),
        "same_candidates": same,
    }


def search_1m_figures(rounds: int, per_identity: int = 10) -> dict:
    """The same comparison at 1M faces, on the index straight from a table (blocks matter here)."""
    from inference_service.gallery import FaceTable
    from inference_service.gallery.index import FaceIndex

    n = FACES_1M
    vectors = unit_vectors(n, DIM, seed=0)
    table = FaceTable(
        face_ids=np.char.encode(np.char.mod("%032x", np.arange(n)), "ascii").astype("S32"),
        identity=(np.arange(n) // per_identity).astype(np.int32),
        names=[f"id{i:07d}" for i in range(n // per_identity)],
        embeddings=vectors,
        created_at=np.zeros(n, "datetime64[us]"),
        boxes=np.full((n, 4), np.nan, np.float32),
    )
    index = FaceIndex.from_table(table, DIM)
    starts = np.arange(0, n, per_identity)
    query = unit_vectors(1, DIM, seed=1)
    same = [name for name, _ in index.search(query, 5)[0]] == [
        f"id{i:07d}" for i in _reduceat_search(vectors, starts, query)[0]
    ]
    times = interleaved(
        {"ours": lambda: index.search(query, 5), "before": lambda: _reduceat_search(vectors, starts, query)},
        rounds=rounds,
        warmup=2,
    )
    return {
        "faces": n,
        "blocks": len(index._view.blocks),
        "search_ms": median_ms(times["ours"]),
        "before_ms": median_ms(times["before"]),
        "same_candidates": same,
        "rounds": rounds,
    }


def run(quick: bool = False, postgres: str | None = None) -> dict:
    rounds = 10 if quick else 30
    postgres = postgres or os.environ.get("FACE_BENCH_POSTGRES")
    search = search_figures(100_000, rounds=50 if quick else 200)
    search_1m = search_1m_figures(rounds=5 if quick else 15)
    sqlite = sqlite_figures(FACES_1M, rounds)
    report = report_figures(rounds=2 if quick else 5)
    pg = (
        postgres_figures(postgres, FACES_1M, rounds)
        if postgres
        else {"skipped": "no --postgres URL or FACE_BENCH_POSTGRES"}
    )
    return {
        "search_100k": search,
        "search_1m": search_1m,
        "sqlite_1m": sqlite,
        "postgres_1m": pg,
        "search_ms_100k": search["search_ms"],
        "search_ms_100k_before": search["before_ms"],
        "enroll_ms_1m": sqlite["enroll_ms"],
        "delete_ms_1m": sqlite["delete_ms"],
        "gallery_ram_ratio_1m": max(sqlite["ram_ratio"], sqlite["ram_ratio_after_writes"]),
        "startup_s_1m": sqlite["startup_s"],
        "startup_s_1m_postgres": pg.get("startup_s"),
        "rename_ms_1m": sqlite["rename_ms"],
        "merge_ms_1m": sqlite["merge_ms"],
        "move_ms_1m": sqlite["move_ms"],
        "report_10k": report,
        "report_s_10k_identities": report["report_s"],
        "targets": TARGETS,
    }


def markdown(result: dict) -> str:
    s, q, pg = result["sqlite_1m"], result["search_100k"], result["postgres_1m"]
    pg_cell = lambda key, unit="": "skipped" if "skipped" in pg else f"{pg[key]}{unit}"  # noqa: E731
    lines = [
        f"Gallery, {s['faces']:,} faces of {DIM}-d ({PER_IDENTITY} per identity), SQLite file {s['file_mb']:.0f} MB "
        f"(built in {s['build_s']} s, not timed); medians of {s['rounds']} writes",
        "",
        "| figure | SQLite | PostgreSQL | target |",
        "| --- | ---: | ---: | ---: |",
        f"| start-up (`Gallery` from its snapshot) | {s['startup_s']} s (CPU {s['startup_cpu_s']} s) | "
        f"{pg_cell('startup_s', ' s')} | <= 3 s |",
        f"| start-up without a snapshot; IVF build; snapshot write | {s['cold_start_s']} s; {s['ivf_build_s']} s; "
        f"{s['snapshot_write_s']} s ({s['snapshot_mb']} MB) | | |",
        f"| enroll 3 faces | {s['enroll_ms']} ms (max {s['enroll_ms_max']}) | {pg_cell('enroll_ms', ' ms')} | <= 20 ms |",
        f"| delete an identity (100 faces) | {s['delete_ms']} ms (max {s['delete_ms_max']}) | {pg_cell('delete_ms', ' ms')} | <= 50 ms |",
        f"| of which the in-memory index (enroll / delete) | {s['index_enroll_ms']} / {s['index_delete_ms']} ms | "
        f"{pg_cell('index_enroll_ms', ' ms')} | |",
        f"| index arrays / raw float32 vectors | {s['ram_ratio']} ({s['index_mb']} / {s['raw_vectors_mb']} MB); "
        f"{s['ram_ratio_after_writes']} after the writes ({s['reserved_ratio_after_writes']} reserved) | "
        f"{pg_cell('ram_ratio')} | <= 1.3 |",
        f"| rename an identity (100 faces) | {s['rename_ms']} ms | {pg_cell('rename_ms', ' ms')} | <= 20 ms |",
        f"| merge a 100-face identity into another | {s['merge_ms']} ms | {pg_cell('merge_ms', ' ms')} | <= 50 ms |",
        f"| move one face to another identity | {s['move_ms']} ms | {pg_cell('move_ms', ' ms')} | <= 20 ms |",
        f"| RSS growth over the load / raw vectors | {s['rss_ratio']} ({s['rss_growth_mb']} MB) | {pg_cell('rss_ratio')} | |",
        "",
        f"Search, one face against {q['faces']:,} faces ({q['per_identity']} per identity), median of {q['rounds']}: "
        f"**{q['search_ms']} ms** (target <= 3.2); the replaced full-matrix `reduceat` design "
        f"{q['before_ms']} ms side by side; same candidates: {'yes' if q['same_candidates'] else 'NO'}",
    ]
    m = result["search_1m"]
    lines.append(
        f"At {m['faces']:,} faces ({m['blocks']} blocks), median of {m['rounds']}: {m['search_ms']} ms, the replaced "
        f"design {m['before_ms']} ms; same candidates: {'yes' if m['same_candidates'] else 'NO'}"
    )
    r = result["report_10k"]
    lines.append(
        f"Gallery report over {r['identities']:,} identities ({r['faces']:,} faces, SQLite), median of {r['rounds']}: "
        f"**{r['report_s']} s** with the table read (target <= 2), {r['compute_s']} s for the pairs and flags; "
        f"{r['pairs']} pairs, {r['flagged']} flagged (random vectors)"
    )
    if "skipped" in pg:
        lines.append(f"\nPostgreSQL: skipped ({pg['skipped']})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (the 1M gallery is still built)")
    parser.add_argument("--postgres", help="postgresql://... to measure the PostgreSQL store too")
    parser.add_argument(
        "--scale", action="store_true", help="only the 10M-face figures (an hour and ~14 GB of disk on 2 cores)"
    )
    parser.add_argument("--scale-dir", help="folder for the 10M gallery's files (default: the temp folder)")
    args = parser.parse_args()
    if args.scale:
        from benchmarks.gallery_scale import scale_figures

        result = scale_figures(folder=args.scale_dir)
        print(machine_line(machine()))
        print(json.dumps(result, indent=1))
        return
    result = run(quick=args.quick, postgres=args.postgres)
    print(machine_line(machine()))
    print()
    print(markdown(result))


if __name__ == "__main__":
    main()
