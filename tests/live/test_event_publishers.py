"""Where events go besides the database, against real receivers: a local webhook receiver that
checks the HMAC-SHA256 signature and fails the first deliveries (retried with backoff, failures
counted), a webhook that is down (given up, counted, never holding up the recording), and a real
Mosquitto broker (Debian's, started here) receiving each event and a retained "who is present"."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from inference_service.analysis.live import TrackEvent
from inference_service.config import Settings
from inference_service.events.service import open_event_log

from support.camera_sources import port_open
from support.live_servers import free_port

SECRET = "webhook-secret"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def told(kind, identity, at, track=1):
    return TrackEvent(kind, track, identity, 0.95 if identity else 0.4, at, 1.5, face=np.zeros((8, 8, 3), np.uint8))


class Receiver:
    """Answers 500 to the first ``failures`` posts, then 204; keeps what it was sent."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.posts: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((dict(self.headers), body))
                self.send_response(500 if len(receiver.posts) <= receiver.failures else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook?token=private"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_webhooks_are_signed_retried_counted_and_never_block(tmp_path):
    receiver = Receiver(failures=2)
    dead = f"http://127.0.0.1:{free_port()}/nobody"
    settings = Settings(
        gallery=tmp_path / "gallery.sqlite3",
        webhooks=json.dumps([receiver.url, dead]),
        webhook_secret=SECRET,
        webhook_retries=2,
    )
    log = open_event_log(settings)
    try:
        started = time.monotonic()
        stored = log.record("door", [told("appeared", "Ada", 1_900_000_000.0)])
        assert time.monotonic() - started < 0.5  # queued, not posted, while the camera waits
        wait_for(lambda: log.delivery()["webhooks"][0]["delivered"] == 1, 15, "the delivery")
        assert len(receiver.posts) == 3  # two failures, retried after 1 s and 2 s
        for headers, body in receiver.posts:
            expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(headers["X-Face-Signature"], expected)
            assert json.loads(body) == stored[0] and headers["X-Face-Delivery"] == str(stored[0]["id"])
            assert headers["X-Face-Event"] == "appeared"
        wait_for(lambda: log.delivery()["webhooks"][1]["given_up"] == 1, 15, "giving up on the dead one")
        good, down = log.delivery()["webhooks"]
        assert good == {
            "url": receiver.url.split("?")[0],
            "delivered": 1,
            "failures": 2,
            "given_up": 0,
            "dropped": 0,
            "queued": 0,
        }
        assert down["failures"] == 3 and down["delivered"] == 0
    finally:
        log.close()
        receiver.stop()


@pytest.fixture()
def broker(tmp_path):
    if not os.access(MOSQUITTO, os.X_OK):
        pytest.skip("mosquitto not found: apt-get install mosquitto (.ci/run does)")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: port_open(port), 15, "mosquitto")
    yield port
    proc.terminate()
    proc.wait(10)


def subscriber(port: int, topic: str):
    import paho.mqtt.client as mqtt

    got: list[tuple[str, str, bool]] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: got.append((m.topic, m.payload.decode(), bool(m.retain)))
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client, got


def test_mqtt_gets_each_event_and_a_retained_presence(tmp_path, broker):
    listener, got = subscriber(broker, "faces/#")
    log = open_event_log(Settings(gallery=tmp_path / "gallery.sqlite3", mqtt_url=f"mqtt://127.0.0.1:{broker}/faces"))
    try:
        wait_for(lambda: log.delivery()["mqtt"]["connected"], 15, "the publisher connected")
        t0 = 1_900_000_000.0
        log.record("door", [told("appeared", "Ada", t0), told("appeared", None, t0 + 1, track=2)])
        log.record("door", [told("left", "Ada", t0 + 5)])
        wait_for(lambda: len([g for g in got if g[0] == "faces/door/event"]) == 3, 15, "three events")
        events = [json.loads(p) for t, p, _ in got if t == "faces/door/event"]
        assert [(e["type"], e["identity"]) for e in events] == [
            ("appeared", "Ada"),
            ("appeared", None),
            ("left", "Ada"),
        ]
        wait_for(lambda: len([g for g in got if g[0] == "faces/door/present"]) == 3, 15, "three presences")
        presences = [json.loads(p) for t, p, _ in got if t == "faces/door/present"]
        assert [(p["identities"], p["unknown"]) for p in presences] == [(["Ada"], 0), (["Ada"], 1), ([], 1)]
        # a subscriber arriving later learns who is present, and that the service is online, at once
        late, late_got = subscriber(broker, "faces/#")
        wait_for(lambda: len(late_got) >= 2, 15, "the retained messages")
        retained = {t: json.loads(p) if t.endswith("present") else p for t, p, r in late_got if r}
        assert retained["faces/door/present"]["unknown"] == 1 and retained["faces/status"] == "online"
        late.loop_stop()
        late.disconnect()
    finally:
        log.close()
    wait_for(lambda: ("faces/status", "offline", False) in got, 15, "offline on close")
    listener.loop_stop()
    listener.disconnect()
