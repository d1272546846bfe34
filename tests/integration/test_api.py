"""The HTTP contract of the inference API, in process (TestClient) with the real engine.

One app and one SQLite gallery serve the whole module; the gallery is filled once through the
API itself (every identity of ../shared/faces/gallery), and the tests check real answers on real
faces: names at the right boxes, unknown people left unnamed, errors with the right codes.
"""

from __future__ import annotations

import io
import logging
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from inference_service.api import create_app
from inference_service.api.errors import INTERNAL_ERROR
from inference_service.api.workers import InferencePool, PoolFullError
from inference_service.config import Settings
from inference_service.engine import iou, load_image
from inference_service.gallery import Gallery, MemoryStore

from support.image_factories import png_header_only

MAX_UPLOAD_MB = 4.0  # small, so the over-limit tests stay cheap; the largest photo here is 2.7 MB


# ---------------------------------------------------------------------------------------------
# helpers
def blank_png(width: int = 320, height: int = 240) -> bytes:
    """A smooth gradient with no face in it."""
    ramp = np.linspace(0, 255, width, dtype=np.uint8)
    pixels = np.repeat(np.repeat(ramp[None, :, None], height, axis=0), 3, axis=2)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def upload(path: Path, field: str = "image") -> dict:
    return {field: (path.name, path.read_bytes(), "application/octet-stream")}


def row_for(manifest, rel: str):
    return next(r for r in manifest if r.path.as_posix().endswith(rel))


def gallery_files(faces_dir: Path) -> dict[str, list[Path]]:
    root = faces_dir / "gallery"
    return {d.name: sorted(p for p in d.iterdir() if p.is_file()) for d in sorted(root.iterdir()) if d.is_dir()}


# ---------------------------------------------------------------------------------------------
# fixtures: one app per module, gallery filled once through the API
@pytest.fixture(scope="module")
def db_path(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("api") / "gallery.sqlite3"


@pytest.fixture(scope="module")
def client(engine, db_path):
    settings = Settings(embedder="dlib-resnet", gallery=db_path, max_upload_mb=MAX_UPLOAD_MB, workers=2, queue_size=16)
    gallery = Gallery.open(db_path, engine.embedder.name, engine.embedder.dim)
    app = create_app(settings, engine=engine, gallery=gallery)
    with TestClient(app) as c:
        yield c
    gallery.close()


@pytest.fixture(scope="module")
def enrolled(client, faces_dir) -> dict[str, dict]:
    """Every gallery identity enrolled, one request per identity with all its photos."""
    answers = {}
    for name, paths in gallery_files(faces_dir).items():
        files = [("image", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths]
        r = client.post(f"/identities/{name}/faces", files=files)
        assert r.status_code == 201, r.text
        answers[name] = r.json()
    return answers


# ---------------------------------------------------------------------------------------------
# health and docs
def test_health_reports_models_and_gallery(client, enrolled):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["embedder"] == {"name": "dlib-resnet", "dim": 128, "threshold": pytest.approx(0.926)}
    assert body["detector"] == "mtcnn"
    faces = sum(a["faces"] for a in enrolled.values())
    assert body["gallery"] == {"identities": len(enrolled), "faces": faces}


def test_openapi_documents_every_field(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    for path in (
        "/health",
        "/detect",
        "/embed",
        "/recognize",
        "/verify",
        "/identities",
        "/identities/{name}",
        "/identities/{name}/faces",
        "/identities/{name}/faces/{face_id}",
    ):
        assert path in spec["paths"], path
    undocumented = [
        f"{schema}.{prop}"
        for schema, body in spec["components"]["schemas"].items()
        for prop, field in body.get("properties", {}).items()
        if not field.get("description")
    ]
    assert undocumented == []


# ---------------------------------------------------------------------------------------------
# detect / embed
def test_detect_finds_the_face_in_original_pixels(client, faces_dir, manifest):
    row = row_for(manifest, "gallery/obama/1.jpg")
    r = client.post("/detect", files=upload(row.path))
    assert r.status_code == 200, r.text
    body = r.json()
    with Image.open(row.path) as im:
        assert (body["width"], body["height"]) == im.size
    best = max(body["faces"], key=lambda f: iou(f["box"], row.faces[0].box))
    assert iou(best["box"], row.faces[0].box) >= 0.5
    assert 0.9 <= best["score"] <= 1.0
    assert len(best["landmarks"]) == 5 and all(len(p) == 2 for p in best["landmarks"])
    x1, y1, x2, y2 = best["box"]
    assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in best["landmarks"])


@pytest.mark.parametrize("endpoint", ["/detect", "/embed", "/recognize"])
def test_no_face_is_200_with_empty_list(client, endpoint):
    r = client.post(endpoint, files={"image": ("blank.png", blank_png(), "image/png")})
    assert r.status_code == 200, r.text
    assert r.json()["faces"] == []


def test_embed_returns_the_engines_unit_vectors(client, engine, faces_dir):
    path = faces_dir / "probes" / "obama_3.jpg"
    r = client.post("/embed", files=upload(path))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["embedder"] == "dlib-resnet" and body["dim"] == 128
    assert len(body["faces"]) >= 1
    api_vectors = np.array([f["embedding"] for f in body["faces"]])
    assert api_vectors.shape[1] == 128
    np.testing.assert_allclose(np.linalg.norm(api_vectors, axis=1), 1.0, atol=1e-4)
    direct = engine.analyze(load_image(path.read_bytes()))
    np.testing.assert_allclose(api_vectors, np.stack([a.embedding for a in direct]), atol=1e-4)


# ---------------------------------------------------------------------------------------------
# enrollment and recognition
def test_enroll_answers_every_added_face(enrolled, manifest):
    obama = enrolled["obama"]
    assert obama["identity"] == "obama"
    assert obama["faces"] == 2 and len(obama["added"]) == 2
    assert len({a["face_id"] for a in obama["added"]}) == 2
    # The largest face of gallery/obama/1.jpg is the labelled one, not the small background face.
    assert iou(obama["added"][0]["box"], row_for(manifest, "gallery/obama/1.jpg").faces[0].box) >= 0.5


def test_recognize_names_both_people_at_their_boxes(client, enrolled, manifest):
    row = row_for(manifest, "multi/obama_biden_1.jpg")
    r = client.post("/recognize", files=upload(row.path))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["threshold"] == pytest.approx(0.926)
    for labelled in row.faces:
        face = max(body["faces"], key=lambda f: iou(f["box"], labelled.box))
        assert iou(face["box"], labelled.box) >= 0.5
        assert face["identity"] == labelled.identity
        assert face["similarity"] >= body["threshold"]
    for face in body["faces"]:
        names = [c["identity"] for c in face["candidates"]]
        sims = [c["similarity"] for c in face["candidates"]]
        assert len(names) == len(set(names)) == min(5, len(enrolled))  # each identity once, top 5
        assert sims == sorted(sims, reverse=True)
        assert face["similarity"] == sims[0]


def test_strangers_stay_unknown(client, enrolled, manifest):
    row = row_for(manifest, "multi/six_faces.jpg")
    body = client.post("/recognize", files=upload(row.path)).json()
    matched = sum(any(iou(f["box"], lf.box) >= 0.5 for f in body["faces"]) for lf in row.faces)
    assert matched >= 5
    assert [f["identity"] for f in body["faces"]] == [None] * len(body["faces"])
    assert all(f["candidates"] for f in body["faces"])  # candidates still shown, just below threshold


def test_threshold_from_form_or_query(client, enrolled, faces_dir):
    path = faces_dir / "multi" / "obama_biden_1.jpg"
    strict = client.post("/recognize", files=upload(path), data={"threshold": "0.999"}).json()
    assert strict["threshold"] == 0.999
    assert all(f["identity"] is None for f in strict["faces"])
    loose = client.post("/recognize?threshold=-1", files=upload(path)).json()
    assert loose["threshold"] == -1
    assert all(f["identity"] is not None for f in loose["faces"])
    for bad in ("abc", "1.5"):
        r = client.post("/recognize", files=upload(path), data={"threshold": bad})
        assert r.status_code == 422
        assert isinstance(r.json()["detail"], str) and "threshold" in r.json()["detail"]


def test_verify_same_and_different_people(client, faces_dir):
    obama, obama_probe, biden = (
        faces_dir / "gallery/obama/1.jpg",
        faces_dir / "probes/obama_3.jpg",
        faces_dir / "gallery/biden/1.jpg",
    )
    same = client.post("/verify", files={**upload(obama, "image_a"), **upload(obama_probe, "image_b")})
    assert same.status_code == 200, same.text
    assert same.json()["same"] is True and same.json()["similarity"] >= same.json()["threshold"]
    other = client.post("/verify", files={**upload(obama, "image_a"), **upload(biden, "image_b")})
    assert other.status_code == 200
    assert other.json()["same"] is False and other.json()["similarity"] < other.json()["threshold"]


@pytest.mark.parametrize("faceless", ["image_a", "image_b"])
def test_verify_names_the_image_without_a_face(client, faces_dir, faceless):
    files = upload(faces_dir / "gallery/obama/1.jpg", "image_a") | upload(faces_dir / "gallery/biden/1.jpg", "image_b")
    files[faceless] = ("blank.png", blank_png(), "image/png")
    r = client.post("/verify", files=files)
    assert r.status_code == 422
    assert faceless in r.json()["detail"] and "no face" in r.json()["detail"]


def test_verify_requires_both_images(client, faces_dir):
    r = client.post("/verify", files=upload(faces_dir / "gallery/obama/1.jpg", "image_a"))
    assert r.status_code == 422
    assert r.json() == {"detail": "field 'image_b' is required"}


@pytest.mark.parametrize(
    "second, status",
    [(("blank.png", blank_png(), "image/png"), 422), (("junk.jpg", b"not an image at all", "image/jpeg"), 415)],
)
def test_enroll_is_all_or_nothing(client, enrolled, faces_dir, second, status):
    before = client.get("/health").json()["gallery"]
    files = [
        ("image", ("1.jpg", (faces_dir / "gallery/rose_leslie/1.jpg").read_bytes(), "image/jpeg")),
        ("image", second),
    ]
    r = client.post("/identities/half_enrolled/faces", files=files)
    assert r.status_code == status
    assert "image 2 of 2" in r.json()["detail"]
    assert client.get("/identities/half_enrolled").status_code == 404
    assert client.get("/health").json()["gallery"] == before


@pytest.mark.parametrize("name", ["bad*name", "x" * 65, " padded", "semi;colon"])
def test_invalid_names_are_422(client, faces_dir, name):
    r = client.post(f"/identities/{name}/faces", files=upload(faces_dir / "gallery/obama/1.jpg"))
    assert r.status_code == 422
    assert "identity names" in r.json()["detail"]
    assert client.get(f"/identities/{name}").status_code == 422


def test_list_and_show_identities(client, enrolled):
    listing = client.get("/identities").json()["identities"]
    assert {i["name"]: i["faces"] for i in listing} == {n: a["faces"] for n, a in enrolled.items()}
    detail = client.get("/identities/obama").json()
    assert detail["name"] == "obama"
    # Faces enrolled in one request share created_at, so compare as a set.
    assert {f["face_id"] for f in detail["faces"]} == {a["face_id"] for a in enrolled["obama"]["added"]}
    for face in detail["faces"]:
        assert face["created_at"].endswith("+00:00") and len(face["box"]) == 4
    assert client.get("/identities/nobody").status_code == 404
    assert client.get("/identities/nobody").json()["detail"] == "no identity named 'nobody'"


def test_delete_erases_from_the_database_file(client, enrolled, faces_dir, db_path):
    files = [
        ("image", (p.name, p.read_bytes(), "image/jpeg"))
        for p in (faces_dir / "probes/kit_harington_3.jpg", faces_dir / "probes/obama_4.jpg")
    ]
    added = client.post("/identities/Temp Person/faces", files=files)
    assert added.status_code == 201, added.text
    face_ids = [a["face_id"] for a in added.json()["added"]]
    with sqlite3.connect(db_path) as db:
        blobs = [row[0] for row in db.execute("SELECT embedding FROM faces WHERE identity = 'Temp Person'")]
    assert len(blobs) == 2
    on_disk = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    assert all(blob in on_disk for blob in blobs)  # the check below can see a leftover copy

    assert client.delete(f"/identities/Temp Person/faces/{face_ids[0]}").status_code == 204
    assert client.delete(f"/identities/Temp Person/faces/{face_ids[0]}").status_code == 404
    assert [f["face_id"] for f in client.get("/identities/Temp Person").json()["faces"]] == face_ids[1:]
    assert client.delete("/identities/Temp Person").status_code == 204
    assert client.delete("/identities/Temp Person").status_code == 404
    assert client.get("/identities/Temp Person").status_code == 404

    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT COUNT(*) FROM faces WHERE identity = 'Temp Person'").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM identities WHERE name = 'Temp Person'").fetchone()[0] == 0
    on_disk = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    for blob in blobs:
        assert blob not in on_disk
    # The remaining gallery still answers, without the erased person.
    body = client.post("/recognize", files=upload(faces_dir / "probes/kit_harington_3.jpg")).json()
    assert all(c["identity"] != "Temp Person" for f in body["faces"] for c in f["candidates"])


# ---------------------------------------------------------------------------------------------
# bad input
def test_missing_file_is_422_with_a_sentence(client):
    r = client.post("/detect")
    assert r.status_code == 422
    assert r.json() == {"detail": "field 'image' is required"}
    r = client.post("/identities/someone/faces", data={"note": "no file"})
    assert r.json() == {"detail": "field 'image' is required"}


@pytest.mark.parametrize(
    "data, status, words",
    [
        (b"", 400, "empty"),
        (b"hello, I am not a picture" * 10, 415, "not an image"),
        ("truncated", 400, "truncated"),
    ],
)
def test_broken_uploads(client, faces_dir, data, status, words):
    if data == "truncated":
        data = (faces_dir / "gallery/obama/1.jpg").read_bytes()
        data = data[: len(data) // 3]
    r = client.post("/recognize", files={"image": ("x.jpg", data, "image/jpeg")})
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


def test_too_many_pixels_is_413_from_the_header(client):
    data = png_header_only(40_000, 40_000)
    assert len(data) < 8192
    start = time.perf_counter()
    r = client.post("/detect", files={"image": ("huge.png", data, "image/png")})
    assert r.status_code == 413
    assert "too many pixels" in r.json()["detail"]
    assert time.perf_counter() - start < 2.0


def test_upload_over_the_limit_is_413(client):
    data = b"\xff" * int((MAX_UPLOAD_MB + 0.5) * 1024 * 1024)
    r = client.post("/detect", files={"image": ("big.jpg", data, "image/jpeg")})
    assert r.status_code == 413
    assert "MiB limit" in r.json()["detail"]

    def chunks():  # no Content-Length: cut off while streaming
        yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n\r\n'
        for _ in range(int(MAX_UPLOAD_MB) + 2):
            yield b"\0" * (1024 * 1024)
        yield b"\r\n--b--\r\n"

    r = client.post("/detect", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413
    assert "MiB limit" in r.json()["detail"]


def test_unknown_routes_and_methods_answer_json(client):
    assert client.get("/nope").json() == {"detail": "Not Found"}
    r = client.get("/detect")
    assert r.status_code == 405 and isinstance(r.json()["detail"], str)


# ---------------------------------------------------------------------------------------------
# API key, overload, unexpected errors (small apps sharing the engine, gallery in memory)
def memory_app(engine, gallery=None, **settings):
    gallery = gallery or Gallery(MemoryStore(), engine.embedder.name, engine.embedder.dim)
    return create_app(Settings(embedder="dlib-resnet", **settings), engine=engine, gallery=gallery)


def test_api_key_guards_writes_only(engine, faces_dir):
    photo = faces_dir / "gallery/biden/1.jpg"
    with TestClient(memory_app(engine, api_key="s3cret-key")) as c:
        for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": "s3cret-ke"}):
            r = c.post("/identities/biden/faces", files=upload(photo), headers=headers)
            assert r.status_code == 401 and "X-API-Key" in r.json()["detail"]
        assert c.get("/identities").json() == {"identities": []}
        r = c.post("/identities/biden/faces", files=upload(photo), headers={"X-API-Key": "s3cret-key"})
        assert r.status_code == 201
        face_id = r.json()["added"][0]["face_id"]
        # reads stay open
        assert c.get("/identities/biden").status_code == 200
        assert c.post("/recognize", files=upload(photo)).json()["faces"][0]["identity"] == "biden"
        assert c.delete(f"/identities/biden/faces/{face_id}").status_code == 401
        assert c.delete("/identities/biden").status_code == 401
        assert c.delete("/identities/biden", headers={"X-API-Key": "s3cret-key"}).status_code == 204


def test_no_key_logs_a_warning(engine, caplog):
    with caplog.at_level(logging.WARNING), TestClient(memory_app(engine)):
        pass
    assert any("FACE_API_KEY is not set" in r.getMessage() for r in caplog.records)


def test_full_queue_is_503_with_retry_after(engine, faces_dir):
    app = memory_app(engine, workers=1, queue_size=1)
    with TestClient(app) as c:
        pool = app.state.services.pool
        release = threading.Event()
        running, waiting = pool.submit(release.wait, 30), pool.submit(release.wait, 30)
        try:
            start = time.perf_counter()
            assert c.get("/health").json()["pool"]["pending"] == 2  # the event loop is not blocked
            r = c.post("/recognize", files=upload(faces_dir / "gallery/biden/1.jpg"))
            assert time.perf_counter() - start < 5.0
            assert r.status_code == 503
            assert int(r.headers["Retry-After"]) >= 1
            assert "busy" in r.json()["detail"]
        finally:
            release.set()
        running.result(5), waiting.result(5)
        r = c.post("/recognize", files=upload(faces_dir / "gallery/biden/1.jpg"))
        assert r.status_code == 200


def test_pool_holds_slots_until_jobs_end():
    pool = InferencePool(workers=1, queue_size=2)
    release = threading.Event()
    try:
        jobs = [pool.submit(release.wait, 10) for _ in range(3)]
        with pytest.raises(PoolFullError):
            pool.submit(release.wait, 10)
        jobs[2].cancel()  # a waiting job given up frees its slot
        assert pool.pending == 2
        extra = pool.submit(lambda: 42)
        release.set()
        assert extra.result(5) == 42
        assert all(j.result(5) for j in jobs[:2])
        assert pool.pending == 0
    finally:
        release.set()
        pool.shutdown()


def test_unexpected_error_is_a_plain_500(engine, faces_dir, caplog):
    class BrokenGallery(Gallery):
        def search(self, *args, **kwargs):
            raise RuntimeError("secret internal detail")

    broken = BrokenGallery(MemoryStore(), engine.embedder.name, engine.embedder.dim)
    with caplog.at_level(logging.ERROR), TestClient(memory_app(engine, gallery=broken)) as c:
        r = c.post("/recognize", files=upload(faces_dir / "gallery/biden/1.jpg"))
    assert r.status_code == 500
    assert r.json() == {"detail": INTERNAL_ERROR}
    assert "secret" not in r.text and "Traceback" not in r.text
    assert any("unhandled error on POST /recognize" in rec.getMessage() for rec in caplog.records)


def test_models_and_gallery_load_at_startup_not_at_creation(tmp_path):
    db = tmp_path / "lazy.sqlite3"
    app = create_app(Settings(embedder="dlib-resnet", gallery=db, threads=1))
    assert not db.exists()  # building the app loads nothing
    with TestClient(app) as c:
        assert db.exists()
        assert c.get("/health").json()["embedder"]["name"] == "dlib-resnet"
