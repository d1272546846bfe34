"""What one video upload may cost the real API process, and the smaller HTTP rules of video jobs.

One API subprocess with small limits: FACE_BODY_TIMEOUT_S=3, FACE_MAX_VIDEO_JOBS=2,
FACE_MAX_VIDEO_MB=2, FACE_MAX_PIXELS=1,000,000, and FACE_VIDEO_DIR on a 1.5 MiB tmpfs where the
machine lets root mount one (the full-disk test skips otherwise). Uploads that stall are sent
over raw sockets, because what is tested (a slot held by a body still arriving, a client that
trickles) only exists on a real connection. Every wait has a deadline.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests

from support.faces import OPTIONAL_SKIP
from support.live_servers import start_api
from support.video_jobs import AUTH, KEY, wait_for

BODY_TIMEOUT_S = 3.0
MAX_JOBS = 2
MAX_PIXELS = 1_000_000
BOUNDARY = "limits-boundary"


def tiny_video(path: Path, size: tuple[int, int] = (64, 48), frames: int = 12, fps: float = 12.0) -> Path:
    """A short MJPEG AVI without faces: analysed in a moment."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for k in range(frames):
        writer.write(np.full((size[1], size[0], 3), (20 * k) % 256, np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    """FACE_VIDEO_DIR: a 1.5 MiB tmpfs when root may mount one, else a plain folder (None)."""
    folder = tmp_path_factory.mktemp("video-disk")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(folder)], capture_output=True, text=True
    )
    yield folder, (done.returncode == 0)
    if done.returncode == 0 and subprocess.run(["umount", str(folder)]).returncode != 0:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


@pytest.fixture(scope="module")
def api(tmp_path_factory, disk):
    root = tmp_path_factory.mktemp("video-limits")
    videos, _ = disk
    server = start_api(
        root,
        root / "gallery.sqlite3",
        FACE_API_KEY=KEY,
        FACE_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S),
        FACE_MAX_VIDEO_JOBS=str(MAX_JOBS),
        FACE_MAX_VIDEO_MB="2",
        FACE_MAX_PIXELS=str(MAX_PIXELS),
        FACE_VIDEO_DIR=str(videos),
    )
    yield server, videos
    server.stop()


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return tiny_video(tmp_path_factory.mktemp("clips") / "small.avi")


def post(url: str, path: Path, headers: dict | None = None) -> requests.Response:
    with open(path, "rb") as fh:
        return requests.post(
            f"{url}/videos", files={"video": (path.name, fh, "video/x-msvideo")}, headers=headers or AUTH, timeout=60
        )


def open_upload(url: str, declared: int = 1_000_000, first: bytes = b"x" * 1000) -> socket.socket:
    """A POST /videos whose body starts and then stops: headers, the part's headers, ``first``."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = (
        f"POST /videos HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {KEY}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {declared}\r\n\r\n"
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="video"; filename="v.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    sock.sendall(head + first)
    return sock


def status_of(sock: socket.socket, timeout: float) -> int | None:
    """The status code the server answers on ``sock`` within ``timeout`` s; None for none."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(4096)
    except TimeoutError:
        return None
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None


def reservations(videos: Path) -> int:
    with sqlite3.connect(videos / "jobs.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM video_uploads").fetchone()[0]


def job_folders(videos: Path) -> set[str]:
    return {p.name for p in videos.iterdir() if p.is_dir() and len(p.name) == 32}


def settle(url: str, ids: list[str]) -> None:
    for job_id in ids:
        wait_for(url, job_id, lambda j: j["status"] in ("done", "failed"), timeout=120)


def test_a_trickled_video_body_gets_408_within_the_body_timeout(api):
    server, videos = api
    before = job_folders(videos)
    sock = open_upload(server.url)
    stop = threading.Event()

    def trickle() -> None:  # 100 bytes every 0.5 s: never idle, never done
        while not stop.wait(0.5):
            try:
                sock.sendall(b"y" * 100)
            except OSError:
                return

    started = time.monotonic()
    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        status = status_of(sock, timeout=BODY_TIMEOUT_S + 12)
    finally:
        stop.set()
        sock.close()
        sender.join(5)
    assert status == 408
    assert time.monotonic() - started < BODY_TIMEOUT_S + 6
    assert reservations(videos) == 0 and job_folders(videos) == before  # the slot and the bytes are given back


def test_uploads_in_progress_hold_job_slots(api, small):
    server, videos = api
    stalled = [open_upload(server.url) for _ in range(MAX_JOBS)]
    try:
        deadline = time.monotonic() + 10
        while reservations(videos) < MAX_JOBS:  # both requests reached their route
            assert time.monotonic() < deadline, "the stalled uploads never reserved their slots"
            time.sleep(0.05)
        r = post(server.url, small)
        assert r.status_code == 503 and r.headers["Retry-After"], r.text
        assert "FACE_MAX_VIDEO_JOBS" in r.json()["detail"]
        assert [status_of(s, timeout=BODY_TIMEOUT_S + 12) for s in stalled] == [408, 408]
    finally:
        for s in stalled:
            s.close()
    assert reservations(videos) == 0
    r = post(server.url, small)  # the slots came back
    assert r.status_code == 202, r.text
    settle(server.url, [r.json()["id"]])


def test_parallel_uploads_never_exceed_the_cap(api, small):
    server, videos = api
    blockers = [open_upload(server.url) for _ in range(MAX_JOBS - 1)]  # one slot left
    try:
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: post(server.url, small), range(6)))
    finally:
        for s in blockers:
            s.close()
    codes = sorted(r.status_code for r in answers)
    assert codes.count(202) <= 1 and set(codes) <= {202, 503}, codes
    settle(server.url, [r.json()["id"] for r in answers if r.status_code == 202])


def test_frames_over_the_pixel_limit_are_refused_at_upload(api, tmp_path):
    server, videos = api
    before = job_folders(videos)
    big = tiny_video(tmp_path / "big.avi", size=(1280, 800), frames=3)  # 1,024,000 pixels > 1,000,000
    r = post(server.url, big)
    assert r.status_code == 413, r.text
    detail = r.json()["detail"]
    assert "1280x800" in detail and "1,000,000" in detail and "FACE_MAX_PIXELS" in detail
    assert job_folders(videos) == before and reservations(videos) == 0


def test_a_full_disk_during_an_upload_is_507_and_leaves_nothing(api, disk, tmp_path):
    server, videos = api
    if not disk[1]:
        pytest.skip(f"{OPTIONAL_SKIP} cannot mount a small tmpfs for FACE_VIDEO_DIR; needs root")
    before = job_folders(videos)
    filler = tmp_path / "filler.mp4"
    filler.write_bytes(b"\0" * (1900 * 1024))  # under FACE_MAX_VIDEO_MB, over the 1.5 MiB disk
    with open(filler, "rb") as fh:
        r = requests.post(f"{server.url}/videos", files={"video": ("f.mp4", fh)}, headers=AUTH, timeout=60)
    assert r.status_code == 507, r.text
    assert "full" in r.json()["detail"]
    assert job_folders(videos) == before and reservations(videos) == 0


@pytest.fixture(scope="module")
def done_small(api, small):
    server, _ = api
    r = post(server.url, small)
    assert r.status_code == 202, r.text
    return wait_for(server.url, r.json()["id"], lambda j: j["status"] in ("done", "failed"), timeout=120)


def test_job_urls_are_paths_whatever_the_host_header(api, done_small):
    server, _ = api
    job_id = done_small["id"]
    assert done_small["status"] == "done", done_small
    r = requests.get(f"{server.url}/videos/{job_id}", headers={"Host": "evil.example"}, timeout=30)
    body = r.json()
    assert body["url"] == f"/videos/{job_id}" and body["annotated_url"] == f"/videos/{job_id}/annotated"
    assert "evil" not in r.text


def test_annotated_video_head_ranges_and_malformed_ranges(api, done_small):
    server, _ = api
    url = f"{server.url}/videos/{done_small['id']}/annotated"
    whole = requests.get(url, timeout=30)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    size = len(whole.content)
    head = requests.head(url, timeout=30)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == size and head.headers["content-type"] == "video/mp4"
    for malformed in ("bytes=abc", "pages=1-2", "bytes=9-3", "bytes", "bytes=--1"):
        r = requests.get(url, headers={"Range": malformed}, timeout=30)
        assert r.status_code == 200 and r.content == whole.content, malformed
    part = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=30)
    assert part.status_code == 206 and part.content == whole.content[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{size}"
    tail = requests.get(url, headers={"Range": "bytes=-5"}, timeout=30)
    assert tail.status_code == 206 and tail.content == whole.content[-5:]
    beyond = requests.get(url, headers={"Range": f"bytes={size}-"}, timeout=30)
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"


def test_listing_pages(api, small):
    server, _ = api
    made = []
    for _ in range(3):
        r = post(server.url, small)
        assert r.status_code == 202, r.text
        made.append(r.json()["id"])
        settle(server.url, made[-1:])  # one at a time: the cap is 2
    everything = []
    page = requests.get(f"{server.url}/videos", params={"limit": 2}, timeout=30).json()
    pages = 1
    while True:
        assert len(page["videos"]) <= 2
        everything += [j["id"] for j in page["videos"]]
        if page["next"] is None:
            break
        assert page["next"].startswith("/videos?")
        page = requests.get(server.url + page["next"], timeout=30).json()
        pages += 1
        assert pages < 50
    assert pages >= 2 and len(everything) == len(set(everything)) and set(made) <= set(everything)
    assert everything[:3] == made[::-1]  # newest first
    assert requests.get(f"{server.url}/videos", params={"limit": 0}, timeout=30).status_code == 422


def test_concurrent_deletes_of_one_job_one_204_the_others_404(api, small):
    server, videos = api
    r = post(server.url, small)
    job_id = r.json()["id"]
    settle(server.url, [job_id])
    with ThreadPoolExecutor(4) as pool:
        codes = sorted(
            pool.map(
                lambda _: requests.delete(f"{server.url}/videos/{job_id}", headers=AUTH, timeout=60).status_code,
                range(4),
            )
        )
    assert codes == [204, 404, 404, 404]
    assert not (videos / job_id).exists()


def test_annotated_video_survives_a_delete_while_it_is_sent(api, small):
    """The file is opened before the answer starts: a DELETE at the same moment leaves either a
    whole download or a 404, never a connection dropped after 200 headers."""
    server, _ = api
    for _ in range(4):
        job_id = post(server.url, small).json()["id"]
        settle(server.url, [job_id])
        url = f"{server.url}/videos/{job_id}/annotated"
        expected = requests.get(url, timeout=30).content
        results: list = []

        def download() -> None:
            try:
                got = requests.get(url, timeout=30)
                results.append((got.status_code, got.content))
            except requests.RequestException as exc:  # a dropped connection is the failure looked for
                results.append((None, repr(exc)))

        thread = threading.Thread(target=download)
        thread.start()
        assert requests.delete(f"{server.url}/videos/{job_id}", headers=AUTH, timeout=60).status_code == 204
        thread.join(40)
        status, content = results[0]
        assert (status == 200 and content == expected) or status == 404, (status, content)
