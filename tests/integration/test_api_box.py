"""Enrolling one chosen face of a group photo: the ``box`` form field of POST /identities/{name}/faces.

Real engine, real SQLite gallery of its own (the shared one of test_api.py keeps the six people
of multi/six_faces.jpg strangers), real faces with the boxes MANIFEST.tsv gives them.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from inference_service.api import create_app
from inference_service.config import Settings
from inference_service.engine import iou
from inference_service.gallery import Gallery

GROUP = "multi/six_faces.jpg"


@pytest.fixture()
def client(engine, tmp_path):
    path = tmp_path / "gallery.sqlite3"
    gallery = Gallery.open(path, engine.embedder.name, engine.embedder.dim)
    app = create_app(Settings(embedder="dlib-resnet", gallery=path, workers=1), engine=engine, gallery=gallery)
    with TestClient(app) as c:
        yield c
    gallery.close()


@pytest.fixture(scope="module")
def group(manifest):
    row = next(r for r in manifest if r.path.as_posix().endswith(GROUP))
    return row.path, [f.box for f in row.faces]


def box_text(box) -> str:
    return ",".join(f"{v:g}" for v in box)


def test_the_boxed_face_is_enrolled_and_then_recognised_alone(client, group):
    path, boxes = group
    data = path.read_bytes()
    chosen = boxes[2]
    r = client.post(
        "/identities/Third Person/faces", files=[("image", (path.name, data))], data={"box": box_text(chosen)}
    )
    assert r.status_code == 201, r.text
    [added] = r.json()["added"]
    assert iou(added["box"], chosen) >= 0.5

    faces = client.post("/recognize", files={"image": (path.name, data)}).json()["faces"]
    named = [f for f in faces if f["identity"] is not None]
    assert [f["identity"] for f in named] == ["Third Person"], faces
    assert iou(named[0]["box"], chosen) >= 0.5
    # Every other labelled person is found and stays unknown.
    for other in boxes[:2] + boxes[3:]:
        match = max(faces, key=lambda f: iou(f["box"], other))
        if iou(match["box"], other) >= 0.5:
            assert match["identity"] is None


def test_a_box_over_no_face_is_a_422_naming_the_image_and_stores_nothing(client, group):
    path, _ = group
    r = client.post(
        "/identities/nobody/faces", files=[("image", (path.name, path.read_bytes()))], data={"box": "0,0,80,80"}
    )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert path.name in detail and "0,0,80,80" in detail and "IoU" in detail
    assert client.get("/identities/nobody").status_code == 404


@pytest.mark.parametrize(
    "boxes, expect",
    [
        (["1,2,3"], "x1,y1,x2,y2"),
        (["a,b,c,d"], "x1,y1,x2,y2"),
        (["1e3,0,2e3,50"], "x1,y1,x2,y2"),
        (["nan,0,10,10"], "x1,y1,x2,y2"),
        (["50,50,10,90"], "x2 must exceed x1"),
        (["10,10,90,90", "10,10,90,90"], "2 boxes for 1 image"),
    ],
)
def test_malformed_boxes_and_too_many_are_422(client, faces_dir, boxes, expect):
    photo = faces_dir / "gallery/obama/1.jpg"
    r = client.post("/identities/obama/faces", files=[("image", (photo.name, photo.read_bytes()))], data={"box": boxes})
    assert r.status_code == 422, r.text
    assert expect in r.json()["detail"]
    assert client.get("/identities/obama").status_code == 404


def test_fewer_boxes_than_images_apply_to_the_first(client, group, faces_dir):
    """The second photo has no box: its largest face is enrolled, as without any box."""
    path, boxes = group
    portrait = faces_dir / "gallery/obama/1.jpg"
    files = [("image", (path.name, path.read_bytes())), ("image", (portrait.name, portrait.read_bytes()))]
    r = client.post("/identities/mixed/faces", files=files, data={"box": box_text(boxes[5])})
    assert r.status_code == 201, r.text
    first, second = r.json()["added"]
    assert iou(first["box"], boxes[5]) >= 0.5
    alone = client.post("/detect", files={"image": (portrait.name, portrait.read_bytes())}).json()["faces"]
    largest = max(alone, key=lambda f: (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]))
    assert iou(second["box"], largest["box"]) > 0.99
