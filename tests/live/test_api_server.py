"""The inference API as a real server process (``python -m inference_service``).

What only a real process shows: the gallery survives a restart, the API key works over the
wire, 16 enrollments and 16 recognitions at once all succeed with nothing lost, hostile uploads
are refused quickly, and a gallery from another embedder stops the start with a clear message.
One server serves the module; it is restarted (twice) on the same gallery file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from inference_service.gallery import SQLiteStore

from support.image_factories import png_header_only
from support.live_servers import REPO, clean_env, free_port, start_api

KEY = "server-test-key"
AUTH = {"X-API-Key": KEY}
SERVER_ENV = dict(
    FACE_API_KEY=KEY,
    FACE_WORKERS="2",
    FACE_QUEUE_SIZE="40",  # 32 requests at once must all be served, none refused
    FACE_MAX_UPLOAD_MB="10",
)


class RestartableServer:
    """The API on one gallery file; ``restart`` stops it and starts a new process on that file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.gallery = root / "gallery.sqlite3"
        self.starts = 0
        self.api = None
        self.start()

    @property
    def url(self) -> str:
        return self.api.url

    def start(self) -> None:
        self.starts += 1
        logs = self.root / f"run-{self.starts}"
        logs.mkdir()
        self.api = start_api(logs, self.gallery, **SERVER_ENV)

    def stop(self) -> None:
        if self.api is not None:
            self.api.stop()
            self.api = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="module")
def server(tmp_path_factory, faces_dir):
    srv = RestartableServer(tmp_path_factory.mktemp("server"))
    yield srv
    srv.stop()


def files_of(path: Path, field: str = "image") -> dict:
    return {field: (path.name, path.read_bytes(), "application/octet-stream")}


def enroll(server: RestartableServer, name: str, path: Path, headers: dict | None = AUTH) -> requests.Response:
    return requests.post(f"{server.url}/identities/{name}/faces", files=files_of(path), headers=headers, timeout=120)


def recognized_names(server: RestartableServer, path: Path) -> set[str]:
    r = requests.post(f"{server.url}/recognize", files=files_of(path), timeout=120)
    assert r.status_code == 200, r.text
    return {f["identity"] for f in r.json()["faces"]} - {None}


def test_api_key_over_the_wire(server, faces_dir):
    photo = faces_dir / "gallery/obama/1.jpg"
    assert enroll(server, "obama", photo, headers=None).status_code == 401
    assert enroll(server, "obama", photo, headers={"X-API-Key": KEY + "x"}).status_code == 401
    assert requests.get(f"{server.url}/identities/obama", timeout=10).status_code == 404
    assert enroll(server, "obama", photo).status_code == 201
    assert requests.delete(f"{server.url}/identities/obama", timeout=10).status_code == 401
    assert requests.get(f"{server.url}/identities", timeout=10).status_code == 200  # reads stay open


def test_parallel_enrolls_and_recognitions_lose_nothing(server, faces_dir):
    for name in ("obama", "biden"):
        if requests.get(f"{server.url}/identities/{name}", timeout=10).status_code == 404:
            assert enroll(server, name, faces_dir / f"gallery/{name}/1.jpg").status_code == 201
    # Other people only: a second name on obama's or biden's photo would win their recognition.
    photos = [p for p in sorted((faces_dir / "gallery").glob("*/*")) if p.parent.name not in ("obama", "biden")]
    names = [f"parallel {i:02d}" for i in range(16)]
    scene = faces_dir / "multi/obama_biden_1.jpg"

    def job(i: int):
        if i % 2 == 0:
            k = i // 2
            return "enroll", enroll(server, names[k], photos[k % len(photos)])
        return "recognize", requests.post(f"{server.url}/recognize", files=files_of(scene), timeout=300)

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(job, range(32)))
    for kind, r in results:
        assert r.status_code == (201 if kind == "enroll" else 200), r.text
        if kind == "recognize":
            assert {f["identity"] for f in r.json()["faces"]} >= {"obama", "biden"}
        else:
            assert r.json()["faces"] == 1
    listing = {i["name"]: i["faces"] for i in requests.get(f"{server.url}/identities", timeout=10).json()["identities"]}
    assert all(listing.get(n) == 1 for n in names), listing
    assert requests.get(f"{server.url}/health", timeout=10).json()["gallery"]["faces"] == sum(listing.values())


def test_gallery_survives_a_restart(server, faces_dir):
    assert enroll(server, "restart check", faces_dir / "probes/kit_harington_3.jpg").status_code == 201
    before_list = requests.get(f"{server.url}/identities", timeout=10).json()
    before_detail = {
        i["name"]: requests.get(f"{server.url}/identities/{i['name']}", timeout=10).json()
        for i in before_list["identities"]
    }
    server.restart()
    assert requests.get(f"{server.url}/identities", timeout=10).json() == before_list
    for name, detail in before_detail.items():
        assert requests.get(f"{server.url}/identities/{name}", timeout=10).json() == detail
    assert "obama" in recognized_names(server, faces_dir / "probes/obama_3.jpg")
    # The enrolled photo itself matches its stored vector (similarity ~1) after the restart.
    assert "restart check" in recognized_names(server, faces_dir / "probes/kit_harington_3.jpg")
    # A deletion after the restart is durable too.
    assert requests.delete(f"{server.url}/identities/restart check", headers=AUTH, timeout=10).status_code == 204
    server.restart()
    assert requests.get(f"{server.url}/identities/restart check", timeout=10).status_code == 404


def test_pixel_bomb_header_is_refused_quickly(server):
    data = png_header_only(40_000, 40_000)
    assert len(data) < 8192
    start = time.perf_counter()
    r = requests.post(f"{server.url}/recognize", files={"image": ("bomb.png", data, "image/png")}, timeout=30)
    assert r.status_code == 413
    assert "too many pixels" in r.json()["detail"]
    assert time.perf_counter() - start < 2.0


def test_30mb_upload_is_refused_quickly(server):
    data = os.urandom(30 * 1024 * 1024)
    start = time.perf_counter()
    r = requests.post(f"{server.url}/detect", files={"image": ("big.jpg", data, "image/jpeg")}, timeout=30)
    assert r.status_code == 413
    assert "10 MiB limit" in r.json()["detail"]
    assert time.perf_counter() - start < 3.0
    assert requests.get(f"{server.url}/health", timeout=10).status_code == 200


def test_gallery_of_another_embedder_stops_the_start(tmp_path):
    path = tmp_path / "facenet.sqlite3"
    SQLiteStore(path, "facenet-vggface2", 512).close()
    env = clean_env(FACE_GALLERY=str(path), FACE_EMBEDDER="dlib-resnet", FACE_THREADS="1", FACE_PORT=str(free_port()))
    done = subprocess.run(
        [sys.executable, "-m", "inference_service"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "holds facenet-vggface2 embeddings" in out and "FACE_EMBEDDER=facenet-vggface2" in out
    assert "Traceback" not in out
