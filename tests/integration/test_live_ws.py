"""WebSocket /live in process (TestClient) with the real engine and real frames of the stage clip.

Lin-Manuel Miranda is enrolled from his one gallery photo; frames of the stage clip sent one by
one come back with his name on a decided track, under one track id while he stays in view. Bad
frames (garbage, too many bytes, too many pixels, text) get an error message and the connection
serves the next good frame; frames sent faster than they are analysed are dropped and counted;
the read key, tickets and the connection cap close with the codes the module documents.
"""

from __future__ import annotations

import time

import cv2
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from inference_service.api import create_app
from inference_service.config import Settings
from inference_service.gallery import Gallery

from support.image_factories import png_header_only

MIRANDA = "lin_manuel_miranda"
READ_KEY = "live-read-key"
WRITE_KEY = "live-write-key"
MAX_FRAME_MB = 1.0


def clip_frames(faces_dir, start: int, stop: int, step: int) -> list[bytes]:
    capture = cv2.VideoCapture(str(faces_dir / "video" / "stage_640x360.mp4"))
    out, index = [], 0
    while index < stop and capture.grab():
        if index >= start and (index - start) % step == 0:
            ok, frame = capture.retrieve()
            assert ok
            out.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
        index += 1
    capture.release()
    return out


@pytest.fixture(scope="module")
def client(engine, faces_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("live") / "gallery.sqlite3"
    settings = Settings(
        embedder="dlib-resnet",
        gallery=path,
        api_key=WRITE_KEY,
        read_api_key=READ_KEY,
        live_max_frame_mb=MAX_FRAME_MB,
        live_max_connections=2,
        workers=1,
    )
    gallery = Gallery.open(path, engine.embedder.name, engine.embedder.dim)
    app = create_app(settings, engine=engine, gallery=gallery)
    with TestClient(app) as c:
        photo = faces_dir / "gallery" / MIRANDA / "1.png"
        r = c.post(
            f"/identities/{MIRANDA}/faces",
            files={"image": (photo.name, photo.read_bytes(), "image/png")},
            headers={"X-API-Key": WRITE_KEY},
        )
        assert r.status_code == 201, r.text
        yield c
    gallery.close()


@pytest.fixture(scope="module")
def frames(faces_dir) -> list[bytes]:
    # 2.8 s to 7.1 s: Miranda sings in close-up, alone in view; every third frame (10 fps)
    return clip_frames(faces_dir, 84, 213, 3)


def open_live(client, **headers):
    return client.websocket_connect("/live", headers={"X-API-Key": READ_KEY, **headers})


def test_frames_of_the_stage_clip_name_miranda_on_one_steady_track(client, frames):
    answers = []
    with open_live(client) as ws:
        for frame in frames:
            ws.send_bytes(frame)
            answers.append(ws.receive_json())
    assert all(a["dropped"] == 0 and a["width"] == 640 and a["height"] == 360 for a in answers)
    named = [(k, f) for k, a in enumerate(answers) for f in a["faces"] if f["identity"] == MIRANDA]
    # his track is decided from its third face on: named in all but the first few frames
    assert len(named) >= len(answers) - 4, [a["faces"] for a in answers]
    assert all(f["decided"] and f["similarity"] >= 0.9 for _, f in named)
    first = named[0][0]
    # once decided, his track keeps its id and name in every later frame he is seen in
    his_track = named[0][1]["track_id"]
    later = [f for a in answers[first:] for f in a["faces"] if f["track_id"] == his_track]
    assert later and all(f["identity"] == MIRANDA for f in later)
    box = named[0][1]["box"]
    assert len(box) == 4 and 0 <= box[0] < box[2] <= 640 and 0 <= box[1] < box[3] <= 360


def test_bad_frames_get_an_error_and_the_connection_serves_the_next_one(client, frames):
    with open_live(client) as ws:
        ws.send_bytes(b"this is not a jpeg at all")
        assert ws.receive_json()["error"] == "unsupported"
        ws.send_bytes(b"\xff" * int(1.5 * MAX_FRAME_MB * 2**20))
        too_big = ws.receive_json()
        assert too_big["error"] == "too_large" and "at most 1 MiB" in too_big["detail"]
        ws.send_bytes(png_header_only(60_000, 60_000))  # 3.6 gigapixels claimed in 4 KB
        assert ws.receive_json()["error"] == "too_large"
        ws.send_text("hello")
        assert ws.receive_json()["error"] == "invalid"
        ws.send_bytes(frames[20])
        answer = ws.receive_json()
        assert "error" not in answer and answer["faces"], answer


def test_frames_sent_faster_than_analysed_are_dropped_latest_wins(client, frames):
    sent = frames[:8]
    with open_live(client) as ws:
        for frame in sent:
            ws.send_bytes(frame)
        answers = []
        while len(answers) + sum(a["dropped"] for a in answers) < len(sent):
            answers.append(ws.receive_json())
    assert len(answers) < len(sent)  # frames that arrived during an analysis were never queued
    assert sum(a["dropped"] for a in answers) == len(sent) - len(answers)


def test_read_key_tickets_and_the_connection_cap(client):
    def close_code(**kwargs) -> int:
        with pytest.raises(WebSocketDisconnect) as caught:
            with client.websocket_connect("/live", **kwargs) as ws:
                ws.receive_json()
        return caught.value.code

    assert close_code() == 1008  # no key, no ticket
    assert close_code(headers={"X-API-Key": "wrong"}) == 1008
    assert client.post("/live/tickets").status_code == 401
    body = client.post("/live/tickets", headers={"X-API-Key": READ_KEY}).json()
    assert body["required"] and body["protocol"] == "faces.live" and body["expires_in"] == 60
    ticket = body["ticket"]
    forged = ticket[:-4] + ("0000" if not ticket.endswith("0000") else "1111")
    assert close_code(subprotocols=["faces.live", f"ticket.{forged}"]) == 1008
    with client.websocket_connect("/live", subprotocols=["faces.live", f"ticket.{ticket}"]) as ws:
        assert ws.accepted_subprotocol == "faces.live"
        ws.send_bytes(b"x")
        assert ws.receive_json()["error"] == "unsupported"  # the ticket opened it
        with open_live(client):  # the second of two allowed
            assert close_code(headers={"X-API-Key": WRITE_KEY}) == 1013  # a third one: try later
    deadline = time.monotonic() + 5  # both closed: a new one is served again
    while True:
        with open_live(client) as ws:
            ws.send_bytes(b"x")
            try:
                assert ws.receive_json()["error"] == "unsupported"
                break
            except WebSocketDisconnect:
                assert time.monotonic() < deadline


def test_a_silent_connection_is_closed(engine, tmp_path):
    path = tmp_path / "gallery.sqlite3"
    gallery = Gallery.open(path, engine.embedder.name, engine.embedder.dim)
    app = create_app(Settings(embedder="dlib-resnet", gallery=path, live_idle_s=0.5), engine=engine, gallery=gallery)
    with TestClient(app) as c, c.websocket_connect("/live") as ws:
        with pytest.raises(WebSocketDisconnect) as caught:
            ws.receive_json()  # nothing sent: the server gives up after live_idle_s
        assert caught.value.code == 1000 and "no frame for 0.5 s" in caught.value.reason
    gallery.close()
