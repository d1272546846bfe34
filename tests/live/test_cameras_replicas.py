"""Two API replicas on one PostgreSQL gallery and one MJPEG camera: exactly one replica watches it
(the other is on standby), the watching replica is killed and the other takes the camera over
once the lease expired; stopping the camera on one replica stops it everywhere."""

from __future__ import annotations

import json
import signal
import time

import requests

from support.camera_sources import MjpegServer
from support.live_servers import start_api

WRITE = {"X-API-Key": "replica-write"}
LEASE_S = 3


def state(server) -> str:
    return requests.get(server.url + "/cameras/hall", timeout=5).json()["state"]


def until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def test_one_replica_watches_a_camera_and_another_takes_it_over(pg_url, tmp_path):
    # a grey frame is enough: this is about who watches, not whom it sees
    import cv2
    import numpy as np

    frame = cv2.imencode(".jpg", np.full((240, 320, 3), 128, np.uint8))[1].tobytes()
    camera = MjpegServer([frame], fps=10)
    settings = {
        "FACE_API_KEY": WRITE["X-API-Key"],
        "FACE_CAMERAS": json.dumps({"hall": camera.url}),
        "FACE_CAMERA_LEASE_S": str(LEASE_S),
        "FACE_CAMERA_MAX_FPS": "2",
    }
    a = start_api(tmp_path, pg_url, name="api-a", **settings)
    b = None
    try:
        b = start_api(tmp_path, pg_url, name="api-b", **settings)
        until(lambda: {state(a), state(b)} == {"live", "standby"}, 30, "one live, one standby")
        for _ in range(8):  # and it stays that way over several renewals
            assert sorted([state(a), state(b)]) == ["live", "standby"]
            time.sleep(0.5)
        watching, other = (a, b) if state(a) == "live" else (b, a)
        watching.proc.send_signal(signal.SIGKILL)
        watching.proc.wait(10)
        killed_at = time.monotonic()
        until(lambda: state(other) == "live", 30, "the takeover")
        assert time.monotonic() - killed_at < LEASE_S + 10
        watching.stop()

        # stop on the one replica left, start on it again
        r = requests.post(other.url + "/cameras/hall/stop", headers=WRITE, timeout=30)
        assert r.status_code == 200 and r.json()["state"] == "stopped"
        time.sleep(LEASE_S)
        assert state(other) == "stopped"  # the lease keeper does not take an unwanted camera
        r = requests.post(other.url + "/cameras/hall/start", headers=WRITE, timeout=30)
        assert r.status_code == 200
        until(lambda: state(other) == "live", 30, "live again after start")
    finally:
        a.stop()
        if b is not None:
            b.stop()
        camera.stop()
