"""Camera events through the real API process: an HTTP MJPEG camera looping the stage clip's
close-up of Miranda (enrolled from his gallery photo), the site's Cameras page, the event stream (Server-Sent Events) with
``Last-Event-ID`` resume, the API killed during the watch (the camera is watched again on start,
the events stay), a stopped camera telling that he left, and his erasure taking his events and
their faces with him."""

from __future__ import annotations

import json
import signal
import time

import pytest
import requests

from support.camera_sources import MjpegServer, clip_jpegs
from support.live_servers import start_api, start_web

MIRANDA = "lin_manuel_miranda"
WRITE_KEY = "events-write"
READ_KEY = "events-read"
READ = {"X-API-Key": READ_KEY}
WRITE = {"X-API-Key": WRITE_KEY}


def stream_until(
    url: str, done, last_event_id: str | None = None, timeout: float = 90.0
) -> list[tuple[int, str, dict]]:
    """Read ``url``'s Server-Sent Events until ``done(events)`` holds."""
    headers = {**READ, **({"Last-Event-ID": last_event_id} if last_event_id is not None else {})}
    got: list[tuple[int, str, dict]] = []
    deadline = time.monotonic() + timeout
    with requests.get(url + "/events/stream", headers=headers, stream=True, timeout=(5, 30)) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"), r.text
        block: dict[str, str] = {}
        for line in r.iter_lines(decode_unicode=True):
            assert time.monotonic() < deadline, f"stream timed out with {got}"
            if line:
                if not line.startswith(":"):
                    key, _, value = line.partition(": ")
                    block[key] = value
                continue
            if "data" in block:
                got.append((int(block["id"]), block["event"], json.loads(block["data"])))
                if done(got):
                    return got
            block = {}
    raise AssertionError(f"the stream ended with {got}")


def about_miranda(events) -> list:
    return [e for e in events if e[2]["identity"] == MIRANDA]


@pytest.fixture(scope="module")
def mjpeg(faces_dir, tmp_path_factory):
    frames = clip_jpegs(faces_dir / "video" / "stage_640x360.mp4", tmp_path_factory.mktemp("frames"), 84, 213)
    server = MjpegServer([p.read_bytes() for p in frames], fps=10)
    yield server
    server.stop()


def test_events_stream_resume_survive_a_kill_and_go_with_the_person(tmp_path, faces_dir, mjpeg):
    settings = {
        "FACE_API_KEY": WRITE_KEY,
        "FACE_READ_API_KEY": READ_KEY,
        "FACE_CAMERAS": json.dumps({"hall": mjpeg.url}),
        "FACE_CAMERA_MAX_FPS": "5",
        "FACE_THREADS": "2",
    }
    gallery = tmp_path / "gallery.sqlite3"
    api = start_api(tmp_path, gallery, **settings)
    try:
        with open(faces_dir / "gallery" / MIRANDA / "1.png", "rb") as fh:
            r = requests.post(f"{api.url}/identities/{MIRANDA}/faces", files={"image": fh}, headers=WRITE, timeout=120)
        assert r.status_code == 201, r.text
        assert requests.get(api.url + "/events/stream", timeout=5).status_code == 401  # the read key
        first = stream_until(api.url, about_miranda, last_event_id="0")
        named = about_miranda(first)[0]
        assert named[1] in ("appeared", "named") and named[2]["camera"] == "hall"
        assert named[2]["face"] == f"/events/{named[0]}/face"

        # the site's Cameras page shows the camera, the event and its face
        web = start_web(tmp_path, api.url, FACE_API_KEY=WRITE_KEY, FACE_READ_API_KEY=READ_KEY)
        try:
            page = requests.get(web.url + "/cameras", timeout=30).text
            assert 'data-state="live"' in page and f"<strong>{MIRANDA}</strong>" in page
            face = requests.get(f"{web.url}/cameras/events/{named[0]}/face.jpg", timeout=30)
            assert face.status_code == 200 and face.content[:2] == b"\xff\xd8"
        finally:
            web.stop()

        api.proc.send_signal(signal.SIGKILL)  # killed during the watch
        api.proc.wait(10)
        api = start_api(tmp_path, gallery, name="api-again", **settings)
        deadline = time.monotonic() + 60
        while requests.get(api.url + "/cameras/hall", headers=READ, timeout=5).json()["state"] != "live":
            assert time.monotonic() < deadline, "the camera is not watched again after the restart"
            time.sleep(0.5)
        listed = requests.get(api.url + "/events", params={"identity": MIRANDA}, headers=READ, timeout=10).json()
        assert named[0] in [e["id"] for e in listed["events"]]  # stored, so it outlived the process

        # resume after the event seen: only later ones come, none twice (the new process's visit)
        resumed = stream_until(api.url, about_miranda, str(named[0]))
        ids = [e[0] for e in resumed]
        assert ids == sorted(set(ids)) and min(ids) > named[0]
        again = about_miranda(resumed)[0]
        # stopping the camera tells that he left, with the time of his visit
        stopped = requests.post(api.url + "/cameras/hall/stop", headers=WRITE, timeout=60)
        assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
        gone = stream_until(api.url, lambda ev: any(e[1] == "left" for e in about_miranda(ev)), str(again[0]))
        left = [e for e in about_miranda(gone) if e[1] == "left"][0]
        assert left[2]["seconds_in_view"] > 0 and min(e[0] for e in gone) > again[0]

        face = requests.get(api.url + named[2]["face"], headers=READ, timeout=10)
        assert face.status_code == 200 and face.content[:2] == b"\xff\xd8"
        # the crop is a face the service finds and names again (so "Name this person" can enroll it)
        again = requests.post(api.url + "/recognize", files={"image": face.content}, headers=READ, timeout=60)
        assert [f["identity"] for f in again.json()["faces"]] == [MIRANDA], again.text
        export = requests.get(f"{api.url}/identities/{MIRANDA}/export", headers=WRITE, timeout=30).json()
        assert named[0] in [e["id"] for e in export["live_events"]]  # his access request lists them
        r = requests.delete(f"{api.url}/identities/{MIRANDA}", headers=WRITE, timeout=30)
        assert r.status_code == 204
        after = requests.get(api.url + "/events", params={"identity": MIRANDA}, headers=READ, timeout=10).json()
        assert after["events"] == []
        assert requests.get(api.url + named[2]["face"], headers=READ, timeout=10).status_code == 404
    finally:
        api.stop()
