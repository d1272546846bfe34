"""The video job store and retention without models: claims, recovery after a kill, the sweeper."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time

import numpy as np

from inference_service.config import Settings
from inference_service.videos import VideoJobs
from inference_service.videos.files import JOBS_DB, new_job_id
from inference_service.videos.jobs import Job
from inference_service.videos.runner import short_read_warning
from inference_service.videos.sqlite_store import SCHEMA, SQLiteJobStore
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


def test_reservations_hold_slots_and_stale_ones_are_swept_with_their_folder(tmp_path):
    settings = Settings(video_dir=tmp_path, max_video_jobs=2, body_timeout_s=5)
    jobs = VideoJobs(settings, engine=None, gallery=None)
    a, b, c = new_job_id(), new_job_id(), new_job_id()
    assert jobs.store.reserve(a, 2) and jobs.store.reserve(b, 2)
    assert not jobs.store.reserve(c, 2)  # uploads in progress count like jobs
    jobs.store.admit(job(id=a))  # a reservation becomes the job: still one slot
    assert jobs.store.count_unfinished() == 2 and jobs.store.get(a).status == "queued"
    jobs.files(b).folder.mkdir()
    (jobs.files(b).partial_upload).write_bytes(b"half a video")
    with jobs.store._transaction() as db:  # its process was killed mid-upload an hour ago
        db.execute("UPDATE video_uploads SET started_at = ? WHERE id = ?", (time.time() - 3600, b))
    assert jobs.sweep() == 1
    assert not jobs.files(b).folder.exists() and jobs.store.reserve(c, 2)
    jobs.store.close()


def test_an_older_jobs_file_gains_the_new_column_and_table(tmp_path):
    path = tmp_path / JOBS_DB
    with sqlite3.connect(path) as db:  # the schema before warnings and reservations
        db.executescript(SCHEMA.replace(",\n    warning TEXT", "").split("CREATE TABLE IF NOT EXISTS video_uploads")[0])
        db.execute(
            "INSERT INTO video_jobs (id, status, filename, size_bytes, duration_s, frames_total, created_at) "
            "VALUES (?, 'done', 'old.mp4', 1, 1.0, 30, 1.0)",
            ("a" * 32,),
        )
    store = SQLiteJobStore(path)
    assert store.get("a" * 32).warning is None and store.reserve(new_job_id(), 5)
    store.close()


def test_a_video_that_ends_early_is_warned_about():
    assert short_read_warning(275, 275) is None and short_read_warning(270, 275) is None  # estimates may be off
    warning = short_read_warning(127, 275)
    assert warning is not None and "127 of the 275 frames" in warning


class _Gallery:
    """Only what the sweeper asks: whether a name is still enrolled."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def faces_of(self, name: str):
        return [object()] if name.casefold() in self.names else None


def _kept_faces(files, tracks: dict[int, int]) -> None:
    """A finished job's kept faces, as the analysis writes them: index, embeddings, crops."""
    (files.results / "faces").mkdir(parents=True)
    rows = []
    for track_id, count in tracks.items():
        for n in range(count):
            crop = f"faces/{track_id}_{n}.jpg"
            (files.results / crop).write_bytes(b"jpeg")
            rows.append({"track_id": track_id, "row": len(rows), "box": [0, 0, 1, 1], "crop": crop})
    np.save(files.results / "face_embeddings.npy", np.ones((len(rows), 4), np.float32))
    (files.results / "faces.json").write_text(json.dumps({"embedder": "x", "faces": rows}))


def test_the_sweeper_erases_tracks_of_people_no_longer_enrolled(tmp_path):
    """A person erased by expiry (or by a process that died before the videos): their tracks go at
    the next sweep, once the record is older than a replica's catching up could explain."""
    jobs = VideoJobs(Settings(video_dir=tmp_path), engine=None, gallery=_Gallery({"kept"}))
    done = job()
    jobs.store.create(done)
    files = jobs.files(done.id)
    _kept_faces(files, {1: 3, 2: 2, 3: 1})
    jobs.store.record_enrollment(done.id, 1, "Gone", "gone")
    jobs.store.record_enrollment(done.id, 2, "Kept", "kept")
    jobs.store.record_enrollment(done.id, 3, "Gone Too", "gone too")
    with jobs.store._transaction() as db:  # enrolled an hour ago, except "Gone Too" just now
        db.execute("UPDATE video_track_enrollments SET enrolled_at = ? WHERE track_id < 3", (time.time() - 3600,))
    jobs.sweep()
    index = json.loads((files.results / "faces.json").read_text())
    assert sorted({r["track_id"] for r in index["faces"]}) == [2, 3]
    assert not list((files.results / "faces").glob("1_*.jpg")) and (files.results / "faces/2_1.jpg").is_file()
    vectors = np.load(files.results / "face_embeddings.npy")
    assert not vectors[:3].any() and vectors[3:].all()
    assert jobs.store.track_erased(done.id, 1) and not jobs.store.track_erased(done.id, 3)
    assert jobs.store.enrollments_of("gone") == [] and len(jobs.store.enrollments_of("kept")) == 1
    jobs.store.close()


def test_a_renamed_person_keeps_their_tracks_through_the_sweep(tmp_path):
    jobs = VideoJobs(Settings(video_dir=tmp_path), engine=None, gallery=_Gallery({"new name"}))
    done = job()
    jobs.store.create(done)
    _kept_faces(jobs.files(done.id), {1: 2})
    jobs.store.record_enrollment(done.id, 1, "Old Name", "old name")
    with jobs.store._transaction() as db:
        db.execute("UPDATE video_track_enrollments SET enrolled_at = ?", (time.time() - 3600,))
    jobs.follow_identity("Old Name", "New Name")
    jobs.sweep()
    assert (jobs.files(done.id).results / "faces/1_1.jpg").is_file()
    assert [e.track_id for e in jobs.store.enrollments_of("new name")] == [1]
    assert jobs.store.enrollments_of("old name") == []
    assert [e.track_id for e in jobs.erase_identity("NEW NAME")] == [1]  # any spelling of the name
    assert not list((jobs.files(done.id).results / "faces").glob("1_*.jpg"))
    jobs.store.close()
