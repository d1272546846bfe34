"""The video job store and retention without models: claims, recovery after a kill, the sweeper."""

from __future__ import annotations

import os
import threading
import time

from inference_service.config import Settings
from inference_service.videos import VideoJobs
from inference_service.videos.files import JOBS_DB, new_job_id
from inference_service.videos.jobs import Job
from inference_service.videos.sqlite_store import SQLiteJobStore
from inference_service.videos.summary import person_summary


def job(**fields) -> Job:
    base = dict(
        id=new_job_id(),
        status="queued",
        filename="v.mp4",
        size_bytes=1,
        duration_s=1.0,
        frames_total=30,
        created_at=time.time(),
    )
    return Job(**{**base, **fields})


def test_concurrent_claims_never_take_one_job_twice(tmp_path):
    path = tmp_path / JOBS_DB
    stores = [SQLiteJobStore(path) for _ in range(4)]  # four connections, as four workers or processes
    queued = [job(created_at=k) for k in range(40)]
    for j in queued:
        stores[0].create(j)
    ids = {j.id for j in queued}
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(store: SQLiteJobStore) -> None:
        while (j := store.claim_next()) is not None:
            with lock:
                claimed.append(j.id)

    threads = [threading.Thread(target=worker, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)  # every job once, none twice
    assert all(stores[0].get(i).status == "running" and stores[0].get(i).attempts == 1 for i in ids)


def test_recovery_requeues_running_jobs_and_fails_them_after_two_starts(tmp_path):
    store = SQLiteJobStore(tmp_path / JOBS_DB)
    first, second = job(created_at=1), job(created_at=2)
    store.create(first)
    store.create(second)
    assert store.claim_next().id == first.id
    assert store.recover_interrupted(max_attempts=2) == ([first.id], [])  # killed once: runs again
    assert store.get(first.id).status == "queued"
    assert store.claim_next().id == first.id and store.get(first.id).attempts == 2
    requeued, failed = store.recover_interrupted(max_attempts=2)  # killed again while running it
    assert (requeued, failed) == ([], [first.id])
    gone = store.get(first.id)
    assert gone.status == "failed" and "stopped while analysing" in gone.error
    assert store.get(second.id).status == "queued"


def test_sweeper_removes_expired_jobs_and_orphaned_folders(tmp_path):
    settings = Settings(video_dir=tmp_path, video_retention_hours=1)
    jobs = VideoJobs(settings, engine=None, gallery=None)
    old, fresh, running = job(), job(), job()
    for j in (old, fresh, running):
        jobs.store.create(j)
        (jobs.files(j.id).results).mkdir(parents=True)
        (jobs.files(j.id).annotated).write_bytes(b"x")
    jobs.store.finish(old.id, "done")
    jobs.store.finish(fresh.id, "done")
    with jobs.store._transaction() as db:  # finished two hours ago
        db.execute("UPDATE video_jobs SET finished_at = ? WHERE id = ?", (time.time() - 7200, old.id))
    orphan = tmp_path / new_job_id()  # an upload cut off by a crash: a folder without a row
    orphan.mkdir()
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))
    young_orphan = tmp_path / new_job_id()  # might be an upload arriving right now
    young_orphan.mkdir()
    assert jobs.sweep() == 2
    assert not jobs.files(old.id).folder.exists() and jobs.store.get(old.id) is None
    assert not orphan.exists() and young_orphan.exists()
    assert jobs.files(fresh.id).annotated.is_file() and jobs.files(running.id).annotated.is_file()
    jobs.store.close()


def test_summary_counts_overlapping_tracks_of_one_person_once():
    timeline = {
        "fps": 10.0,
        "tracks": [
            {"identity": "ada", "start": 0.0, "end": 0.9, "frames": list(range(0, 10))},
            {"identity": "ada", "start": 0.5, "end": 1.4, "frames": list(range(5, 15))},
            {"identity": None, "start": 2.0, "end": 2.4, "frames": list(range(20, 25))},
            {"identity": None, "start": 3.0, "end": 3.4, "frames": list(range(30, 35))},
        ],
    }
    summary = person_summary(timeline)
    assert summary["people"] == [{"identity": "ada", "seconds": 1.5, "first": 0.0, "last": 1.4, "tracks": 2}]
    assert summary["unknown"] == {"tracks": 2, "seconds": 1.0}
