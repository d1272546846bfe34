"""Video jobs through the real API process: upload, progress, result, delete, limits, restarts.

The API runs as a subprocess (``live_servers.start_api``) on the stage clip of ``FACES_DIR``
with Lin-Manuel Miranda enrolled from his gallery photo; one job is analysed for real and its
results checked: the timeline names him, the annotated video is H.264 that OpenCV decodes, the
upload is gone once the job ended. A second API is killed with SIGKILL during a job and started
again on the same files: the job must end (resumed and done, or failed with a reason).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests

from support.live_servers import start_api
from support.video_jobs import AUTH, KEY, MIRANDA, enroll_miranda, truncated_copy, upload, wait_for


@pytest.fixture(scope="module")
def api(tmp_path_factory, faces_dir):
    folder = tmp_path_factory.mktemp("videos-api")
    server = start_api(
        folder,
        folder / "gallery.sqlite3",
        FACE_API_KEY=KEY,
        FACE_MAX_VIDEO_MB="2",
        FACE_MAX_VIDEO_SECONDS="60",
        FACE_THREADS="2",
    )
    enroll_miranda(server.url, faces_dir)
    yield server, folder / "videos"
    server.stop()


@pytest.fixture(scope="module")
def stage(faces_dir) -> Path:
    return faces_dir / "video" / "stage_640x360.mp4"


@pytest.fixture(scope="module")
def done_job(api, stage):
    server, _ = api
    r = upload(server.url, stage)
    assert r.status_code == 202, r.text
    created = r.json()
    assert created["status"] == "queued" and created["url"] == f"/videos/{created['id']}"
    seen = []
    job = wait_for(server.url, created["id"], lambda j: seen.append(j["progress"]) or j["status"] in ("done", "failed"))
    assert job["status"] == "done", job
    return job, seen


def test_job_names_miranda_and_reports_progress(done_job):
    job, seen = done_job
    fractions = [p["fraction"] for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(0 < p["frames_done"] < p["frames_total"] for p in seen), seen  # progress was visible midway
    assert job["progress"]["frames_total"] == 275
    timeline = job["timeline"]
    assert timeline["fps"] == pytest.approx(29.97, abs=0.01) and timeline["frames"] == 275
    named = {t["identity"] for t in timeline["tracks"]} - {None}
    assert named == {MIRANDA}, timeline["tracks"]
    people = {p["identity"]: p for p in job["summary"]["people"]}
    assert set(people) == {MIRANDA}
    assert 2.0 < people[MIRANDA]["seconds"] <= 9.2
    assert 0 <= people[MIRANDA]["first"] < people[MIRANDA]["last"] <= 9.2
    assert job["summary"]["unknown"]["tracks"] == sum(1 for t in timeline["tracks"] if t["identity"] is None)


def test_annotated_video_is_h264_and_supports_ranges(api, done_job, tmp_path):
    server, root = api
    job, _ = done_job
    r = requests.get(server.url + job["annotated_url"], timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    assert r.content[4:8] == b"ftyp"
    path = tmp_path / "annotated.mp4"
    path.write_bytes(r.content)
    capture = cv2.VideoCapture(str(path))
    fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode(errors="replace")
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert fourcc.lower() in ("avc1", "h264"), fourcc  # what browsers play, not mp4v
    assert abs(frames - 275) <= 1
    part = requests.get(server.url + job["annotated_url"], headers={"Range": "bytes=100-199"}, timeout=30)
    assert part.status_code == 206 and part.content == r.content[100:200]
    # the upload is gone once the job ended; the results stay
    folder = root / job["id"]
    assert not (folder / "upload.video").exists() and (folder / "result" / "annotated.mp4").is_file()


def test_name_an_unknown_track_enrolls_its_faces(api, done_job):
    server, _ = api
    job, _ = done_job
    unknown = [
        t for t in job["timeline"]["tracks"] if t["identity"] is None and job["track_faces"].get(str(t["track_id"]))
    ]
    track = max(unknown, key=lambda t: t["faces"])
    crop = requests.get(f"{server.url}/videos/{job['id']}/tracks/{track['track_id']}/faces/0", timeout=30)
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(crop.content, np.uint8), cv2.IMREAD_COLOR) is not None
    url = f"{server.url}/videos/{job['id']}/tracks/{track['track_id']}/enroll"
    assert requests.post(url, json={"name": "Stage Person"}, timeout=30).status_code == 401
    assert requests.post(url, json={"name": "a/b"}, headers=AUTH, timeout=30).status_code == 422
    # The track with the most faces is the dark audience: forced past the enrollment quality gate
    # (tested on its own in tests/integration/test_track_naming.py); this test is about naming.
    r = requests.post(
        url,
        json={"name": "Stage Person", "faces": 3, "consent": "stage release 4", "force": True},
        headers=AUTH,
        timeout=30,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    audit = requests.get(f"{server.url}/audit", params={"identity": "Stage Person"}, headers=AUTH, timeout=30).json()
    assert [(e["action"], sorted(e["face_ids"])) for e in audit["events"]] == [
        ("enroll", sorted(a["face_id"] for a in body["added"]))
    ]
    expected = min(3, job["track_faces"][str(track["track_id"])])
    assert body["identity"] == "Stage Person" and len(body["added"]) == expected == body["faces"]
    shown = requests.get(f"{server.url}/identities/Stage%20Person", timeout=30).json()
    assert shown["consent"]["text"] == "stage release 4"
    faces = shown["faces"]
    assert sorted(f["face_id"] for f in faces) == sorted(a["face_id"] for a in body["added"])
    # the gallery keeps a small thumbnail of each face, cut from the track's kept crop
    thumb = requests.get(f"{server.url}/identities/Stage%20Person/faces/{faces[0]['face_id']}/thumbnail", timeout=30)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(cv2.imdecode(np.frombuffer(thumb.content, np.uint8), cv2.IMREAD_COLOR).shape[:2]) <= 96
    assert requests.delete(f"{server.url}/identities/Stage%20Person", headers=AUTH, timeout=30).status_code == 204


def test_erasing_a_person_reaches_the_tracks_enrolled_under_their_name(api, done_job):
    """Every face the job kept for a track enrolled under the name goes (crops, embeddings, index
    rows), the record keeps no name, the export listed the track, and it cannot be enrolled again.
    The person is renamed in between: the track follows the name."""
    server, root = api
    job, _ = done_job
    results = root / job["id"] / "result"
    current = requests.get(f"{server.url}/videos/{job['id']}", timeout=30).json()["track_faces"]
    track_id, kept = max(((int(t), n) for t, n in current.items()), key=lambda tn: tn[1])
    assert kept >= 2, current
    index = json.loads((results / "faces.json").read_text())
    rows = [r["row"] for r in index["faces"] if r["track_id"] == track_id]
    assert len(rows) == kept and all((results / f"faces/{track_id}_{n}.jpg").is_file() for n in range(kept))
    url = f"{server.url}/videos/{job['id']}/tracks/{track_id}/enroll"
    # forced past the quality gate (tiny faces): what is erased is the point here, not the gate
    r = requests.post(
        url, json={"name": "Erase Me", "faces": 1, "consent": "test", "force": True}, headers=AUTH, timeout=30
    )
    assert r.status_code == 201, r.text
    renamed = requests.patch(
        f"{server.url}/identities/Erase%20Me", json={"name": "Erase Me Later"}, headers=AUTH, timeout=30
    )
    assert renamed.status_code == 200, renamed.text
    export = requests.get(f"{server.url}/identities/Erase%20Me%20Later/export", headers=AUTH, timeout=30).json()
    assert [(t["job_id"], t["track_id"]) for t in export["video_tracks"]] == [(job["id"], track_id)]

    gone = requests.delete(f"{server.url}/identities/Erase%20Me%20Later", headers=AUTH, timeout=30)
    assert gone.status_code == 204
    index = json.loads((results / "faces.json").read_text())
    assert not [r for r in index["faces"] if r["track_id"] == track_id]  # all kept, not only the one enrolled
    assert not list((results / "faces").glob(f"{track_id}_*.jpg"))
    vectors = np.load(results / "face_embeddings.npy")
    assert not vectors[rows].any() and vectors.any()  # that track's rows zeroed, the others kept
    crop = requests.get(f"{server.url}/videos/{job['id']}/tracks/{track_id}/faces/0", timeout=30)
    assert crop.status_code == 404
    with sqlite3.connect(root / "jobs.sqlite3") as db:
        records = db.execute(
            "SELECT identity, identity_key, erased_at FROM video_track_enrollments WHERE job_id = ? AND track_id = ?",
            (job["id"], track_id),
        ).fetchall()
    assert len(records) == 1 and records[0][:2] == (None, None) and records[0][2] is not None
    again = requests.post(url, json={"name": "Erase Me"}, headers=AUTH, timeout=30)
    assert again.status_code == 409 and "erased" in again.json()["detail"]
    assert requests.get(f"{server.url}/identities/Erase%20Me%20Later", timeout=30).status_code == 404


def test_a_video_that_ends_early_is_done_with_a_warning(api, stage, tmp_path):
    server, _ = api
    short = truncated_copy(stage, tmp_path / "cut.mp4")
    r = upload(server.url, short)
    assert r.status_code == 202, r.text
    assert r.json()["progress"]["frames_total"] == 275
    job = wait_for(server.url, r.json()["id"], lambda j: j["status"] in ("done", "failed"))
    assert job["status"] == "done" and job["warning"], job
    assert "of the 275 frames" in job["warning"] and "ends early" in job["warning"]
    assert job["timeline"]["frames"] < 200
    assert requests.delete(f"{server.url}{job['url']}", headers=AUTH, timeout=60).status_code == 204


def test_bad_uploads_get_a_clear_4xx(api, stage, tmp_path):
    server, root = api
    before = sorted(p.name for p in root.iterdir())
    assert upload(server.url, stage, headers={}).status_code == 401
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(50_000))
    r = upload(server.url, garbage)
    assert r.status_code == 415 and "not a video" in r.json()["detail"]
    big = tmp_path / "big.mp4"
    big.write_bytes(stage.read_bytes() * 4)  # 2.4 MiB > FACE_MAX_VIDEO_MB=2
    r = upload(server.url, big)
    assert r.status_code == 413 and "2 MiB" in r.json()["detail"]
    long_video = tmp_path / "long.mp4"
    writer = cv2.VideoWriter(str(long_video), cv2.VideoWriter_fourcc(*"mp4v"), 1.0, (64, 64))
    for k in range(70):  # 70 s at one frame per second > FACE_MAX_VIDEO_SECONDS=60
        writer.write(np.full((64, 64, 3), k * 3, np.uint8))
    writer.release()
    r = upload(server.url, long_video)
    assert r.status_code == 422 and "60 s" in r.json()["detail"]
    r = requests.post(f"{server.url}/videos", data={"video": "not a file"}, headers=AUTH, timeout=30)
    assert r.status_code == 422
    # a photo upload elsewhere still has the photo limit, not the video one
    r = requests.post(f"{server.url}/recognize", files={"image": ("x.jpg", b"\xff" * (11 * 2**20))}, timeout=60)
    assert r.status_code == 413
    assert sorted(p.name for p in root.iterdir()) == before  # refused uploads leave nothing behind


def test_delete_cancels_a_running_job_and_removes_every_file(api, stage):
    server, root = api
    job_id = upload(server.url, stage).json()["id"]
    wait_for(server.url, job_id, lambda j: j["status"] == "running" and j["progress"]["frames_done"] > 0)
    assert (root / job_id).is_dir()
    assert requests.delete(f"{server.url}/videos/{job_id}", timeout=30).status_code == 401
    r = requests.delete(f"{server.url}/videos/{job_id}", headers=AUTH, timeout=90)
    assert r.status_code == 204
    assert not (root / job_id).exists()
    assert requests.get(f"{server.url}/videos/{job_id}", timeout=30).status_code == 404
    assert job_id not in [j["id"] for j in requests.get(f"{server.url}/videos", timeout=30).json()["videos"]]
    with sqlite3.connect(root / "jobs.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM video_jobs WHERE id = ?", (job_id,)).fetchone()[0] == 0
    assert requests.delete(f"{server.url}/videos/{job_id}", headers=AUTH, timeout=30).status_code == 404


def test_stop_and_kill_during_a_job_then_restart_ends_it(tmp_path, faces_dir, stage):
    """SIGTERM mid-job: the job goes back to the queue with its upload and runs after the restart;
    SIGKILL mid-job: the next start queues it again (resumed from the start) or fails it with a
    reason; it is never left "running"."""
    gallery = tmp_path / "gallery.sqlite3"
    env = {"FACE_API_KEY": KEY, "FACE_THREADS": "2"}
    jobs_db = tmp_path / "videos" / "jobs.sqlite3"

    def row(job_id: str) -> tuple:
        with sqlite3.connect(jobs_db) as db:
            return db.execute("SELECT status, attempts FROM video_jobs WHERE id = ?", (job_id,)).fetchone()

    def analysing(j: dict) -> bool:
        return j["status"] == "running" and j["progress"]["frames_done"] >= 30

    first = start_api(tmp_path, gallery, **env)
    try:
        enroll_miranda(first.url, faces_dir)
        job_id = upload(first.url, stage).json()["id"]
        wait_for(first.url, job_id, analysing)
        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(timeout=60) is not None
    finally:
        first.stop()
    assert row(job_id) == ("queued", 0)  # a clean stop is not counted against the video
    assert (tmp_path / "videos" / job_id / "upload.video").is_file()

    second = start_api(tmp_path, gallery, **env)
    try:
        wait_for(second.url, job_id, analysing)
        second.proc.send_signal(signal.SIGKILL)
        second.proc.wait(timeout=30)
    finally:
        second.stop()
    assert row(job_id) == ("running", 1)  # what a kill leaves behind

    third = start_api(tmp_path, gallery, **env)
    try:
        job = wait_for(third.url, job_id, lambda j: j["status"] not in ("queued", "running"))
        assert job["attempts"] == 2
        if job["status"] == "failed":
            assert job["error"], job
        else:
            assert job["status"] == "done" and MIRANDA in {t["identity"] for t in job["timeline"]["tracks"]}
        assert not (tmp_path / "videos" / job_id / "upload.video").exists()
    finally:
        third.stop()
