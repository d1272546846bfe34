"""Face thumbnails through the API: kept at enrollment, served to a reader, erased with the face.

Real faces, the real engine, a SQLite gallery whose file is read directly to see what is held.
"""

from __future__ import annotations

import io
import sqlite3

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from inference_service.api import create_app
from inference_service.config import Settings
from inference_service.engine import load_image
from inference_service.gallery import Gallery


@pytest.fixture
def api(engine, tmp_path):
    db_path = tmp_path / "gallery.sqlite3"
    gallery = Gallery.open(db_path, engine.embedder.name, engine.embedder.dim)
    app = create_app(Settings(embedder="dlib-resnet", gallery=db_path, workers=1), engine=engine, gallery=gallery)
    with TestClient(app) as client:
        yield client, db_path
    gallery.close()


def held(db_path) -> set[str]:
    db = sqlite3.connect(db_path)
    try:
        return {r[0] for r in db.execute("SELECT face_id FROM face_thumbnails")}
    finally:
        db.close()


def test_thumbnail_is_a_small_crop_of_the_face_and_goes_with_it(api, engine, faces_dir):
    client, db_path = api
    photos = sorted((faces_dir / "gallery/obama").glob("*.jpg"))[:2]
    files = [("image", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
    r = client.post("/identities/Obama/faces", files=files)
    assert r.status_code == 201, r.text
    ids = [a["face_id"] for a in r.json()["added"]]
    assert held(db_path) == set(ids)

    r = client.get(f"/identities/obama/faces/{ids[0]}/thumbnail")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert len(r.content) < 8_000  # small: never the uploaded photo
    thumb = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
    assert max(thumb.shape[:2]) <= 96
    # it is the enrolled person's face: the engine finds one there, the same person as the photo
    found = engine.analyze(np.ascontiguousarray(thumb))
    assert len(found) == 1
    photo = engine.analyze(load_image(photos[0].read_bytes()))
    assert max(float(f.embedding @ found[0].embedding) for f in photo) >= engine.threshold

    assert client.get(f"/identities/Obama/faces/{'0' * 32}/thumbnail").status_code == 404
    assert client.get(f"/identities/Nobody/faces/{ids[0]}/thumbnail").status_code == 404

    assert client.delete(f"/identities/Obama/faces/{ids[0]}").status_code == 204
    assert held(db_path) == {ids[1]}
    assert client.get(f"/identities/Obama/faces/{ids[0]}/thumbnail").status_code == 404
    assert client.delete("/identities/Obama").status_code == 204
    assert held(db_path) == set()
