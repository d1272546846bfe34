"""Video jobs on a PostgreSQL gallery: one queue for every replica, leases, and two live APIs.

The store tests run two ``PostgresJobStore`` instances (as two replicas) on the real throwaway
PostgreSQL; the live test starts two real API processes on one database and one shared video
folder, posts the stage clip to one, and reads the finished job from both.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests

from inference_service.config import Settings
from inference_service.videos import VideoJobs
from inference_service.videos.files import new_job_id
from inference_service.videos.jobs import Job
from inference_service.videos.pg_store import PostgresJobStore

from support.live_servers import start_api
from support.video_jobs import MIRANDA, enroll_miranda, upload, wait_for


def job(**fields) -> Job:
    base = {
        "id": new_job_id(),
        "status": "queued",
        "filename": "v.mp4",
        "size_bytes": 1,
        "duration_s": 1.0,
        "frames_total": 30,
        "created_at": time.time(),
    }
    return Job(**{**base, **fields})


def age_lease(url: str, job_id: str, seconds: float) -> None:
    """Make the job's last heartbeat ``seconds`` older, as if its replica had gone quiet."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE video_jobs SET heartbeat_at = heartbeat_at - %s WHERE id = %s", (seconds, job_id))


def test_two_replicas_claiming_at_once_never_take_one_job_twice(pg_url):
    replicas = [PostgresJobStore(pg_url), PostgresJobStore(pg_url)]
    try:
        queued = [job(created_at=k) for k in range(40)]
        for j in queued:
            replicas[0].create(j)
        claimed: list[str] = []
        lock = threading.Lock()

        def worker(store: PostgresJobStore) -> None:
            while (j := store.claim_next()) is not None:
                with lock:
                    claimed.append(j.id)

        threads = [threading.Thread(target=worker, args=(s,)) for s in replicas for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(claimed) == sorted(j.id for j in queued)  # every job once, none twice
        rows = [replicas[1].get(j.id) for j in queued]
        assert all(r.status == "running" and r.attempts == 1 for r in rows)
        assert replicas[0].claim_next() is None and replicas[1].count_unfinished() == 40
    finally:
        for store in replicas:
            store.close()


def test_an_expired_lease_is_taken_over_and_the_old_worker_is_fenced_off(pg_url):
    first, second = PostgresJobStore(pg_url, lease_s=30), PostgresJobStore(pg_url, lease_s=30)
    try:
        j = job()
        first.create(j)
        assert first.claim_next().id == j.id
        assert first.progress(j.id, "analysing", 5, 0.1)
        assert second.claim_next() is None  # the lease is live: the job is the first replica's
        assert second.recover_interrupted(max_attempts=2) == ([], [])  # a starting replica leaves it too

        age_lease(pg_url, j.id, 31)  # the first replica went quiet for longer than the lease
        taken = second.claim_next()
        assert taken is not None and taken.id == j.id and taken.attempts == 2 and taken.status == "running"
        assert not first.progress(j.id, "analysing", 6, 0.2)  # fenced: the job is not its own any more
        assert not first.heartbeat(j.id)
        first.finish(j.id, "failed", "should not land")
        assert second.get(j.id).status == "running"
        assert second.progress(j.id, "analysing", 7, 0.3)

        age_lease(pg_url, j.id, 31)  # the second replica dies too: no third attempt, a reason
        assert first.claim_next() is None  # out of attempts: never claimed again
        assert first.fail_expired() == [j.id] and second.fail_expired() == []
        failed = second.get(j.id)
        assert failed.status == "failed" and "stopped while analysing this video 2 times" in failed.error

        k = job()
        first.create(k)
        assert first.claim_next().id == k.id
        age_lease(pg_url, k.id, 31)
        assert second.recover_interrupted(max_attempts=2) == ([k.id], [])  # a restart requeues it
        assert second.get(k.id).status == "queued"
    finally:
        first.close()
        second.close()


def test_a_job_failed_by_lease_expiry_has_its_upload_deleted(pg_url, tmp_path):
    """The worker loop fails a job whose last attempt's lease expired and removes its upload,
    as the SQLite path does for a job failed at start-up."""
    settings = Settings(gallery=pg_url, video_dir=tmp_path, video_lease_s=30, video_workers=1)
    jobs = VideoJobs(settings, engine=None, gallery=None)
    try:
        j = job()
        jobs.store.create(j)
        files = jobs.files(j.id)
        files.folder.mkdir()
        files.upload.write_bytes(b"an uploaded video")
        assert jobs.store.claim_next().id == j.id  # attempt 1
        jobs.store.requeue(j.id)  # (a clean stop gives the attempt back) ...
        with psycopg.connect(pg_url, autocommit=True) as conn:  # ... so set it as used up
            conn.execute("UPDATE video_jobs SET status = 'running', attempts = 2 WHERE id = %s", (j.id,))
        age_lease(pg_url, j.id, 31)
        jobs.start()
        deadline = time.monotonic() + 20
        while jobs.store.get(j.id).status != "failed":
            assert time.monotonic() < deadline, jobs.store.get(j.id)
            time.sleep(0.1)
        assert "stopped while analysing this video 2 times" in jobs.store.get(j.id).error
        while files.upload.exists():
            assert time.monotonic() < deadline, "the failed job's upload is still on disk"
            time.sleep(0.1)
    finally:
        jobs.stop(timeout=10)


def test_upload_reservations_are_counted_across_replicas(pg_url):
    first, second = PostgresJobStore(pg_url), PostgresJobStore(pg_url)
    try:
        first.create(job())
        ids = [new_job_id() for _ in range(12)]
        with ThreadPoolExecutor(12) as pool:  # two replicas, twelve uploads at once, three slots
            taken = list(pool.map(lambda k: (first, second)[k % 2].reserve(ids[k], 3), range(12)))
        assert taken.count(True) == 2 and first.count_unfinished() == 3
        winner = ids[taken.index(True)]
        second.admit(job(id=winner))
        assert second.get(winner).status == "queued" and first.count_unfinished() == 3
        assert first.stale_uploads(time.time() + 60) == [ids[k] for k in range(12) if taken[k] and ids[k] != winner]
        assert first.count_unfinished() == 2
    finally:
        first.close()
        second.close()


LEASE_S = "3"  # short, so a dead replica's job is taken over within seconds


@pytest.fixture(scope="module")
def replicas(pg_server, tmp_path_factory):
    """Two API replicas on one database and one shared video folder; ``launch`` starts another."""
    url = pg_server.create_database(f"video_jobs_live_{new_job_id()[:8]}")
    folder = tmp_path_factory.mktemp("videos-pg")
    common = {
        "FACE_VIDEO_DIR": str(folder / "shared-videos"),
        "FACE_MAX_VIDEO_SECONDS": "60",
        "FACE_THREADS": "2",
        "FACE_VIDEO_LEASE_S": LEASE_S,
    }
    servers: list = []

    def launch(name: str):
        servers.append(start_api(folder, url, name=name, **common))
        return servers[-1]

    try:
        launch("api-a")
        launch("api-b")
        yield servers, launch
    finally:
        for server in servers:
            server.stop()


def test_a_job_posted_to_one_replica_is_done_and_visible_on_both(replicas, faces_dir):
    (a, b), _ = replicas
    enroll_miranda(a.url, faces_dir)
    r = upload(a.url, faces_dir / "video" / "stage_640x360.mp4", headers={})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert requests.get(f"{b.url}/videos/{job_id}", timeout=30).json()["status"] in ("queued", "running")
    done = wait_for(b.url, job_id, lambda j: j["status"] in ("done", "failed"))
    assert done["status"] == "done", done
    seen_on_a = requests.get(f"{a.url}/videos/{job_id}", timeout=30).json()
    assert seen_on_a["status"] == "done" and seen_on_a["progress"]["fraction"] == 1
    names = {t["identity"] for t in seen_on_a["timeline"]["tracks"]}
    assert MIRANDA in names
    for server in (a, b):  # the annotated video is in the shared folder: either replica serves it
        assert job_id in {v["id"] for v in requests.get(f"{server.url}/videos", timeout=30).json()["videos"]}
        video = requests.get(f"{server.url}/videos/{job_id}/annotated", timeout=60)
        assert video.status_code == 200 and len(video.content) > 10_000


def test_a_replica_killed_during_a_job_loses_it_not(replicas, faces_dir):
    """B is stopped, A takes the job and is killed; B, started again, takes it over once A's
    lease expired and finishes it."""
    servers, launch = replicas
    a, b = servers[0], servers[1]
    b.stop()
    r = upload(a.url, faces_dir / "video" / "stage_640x360.mp4", headers={})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    wait_for(a.url, job_id, lambda j: j["status"] == "running" and j["progress"]["frames_done"] > 0)
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(timeout=30)
    b2 = launch("api-b2")
    done = wait_for(b2.url, job_id, lambda j: j["status"] in ("done", "failed"))
    assert done["status"] == "done" and done["attempts"] == 2, done  # A's start, then B's
    assert MIRANDA in {t["identity"] for t in done["timeline"]["tracks"]}
