"""The gallery's report of its own mistakes, on the shared labelled faces with the real embedder:
nothing for the distinct people of the gallery, the face enrolled under the wrong name flagged,
two identities enrolled from one person's photos suggested; over HTTP on both stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from inference_service.api.app import create_app
from inference_service.config import Settings
from inference_service.engine import load_image, pick_largest
from inference_service.gallery import Gallery, MemoryStore
from inference_service.gallery.report import gallery_report


@pytest.fixture(scope="module")
def embed(engine):
    def one(path: Path) -> np.ndarray:
        image = load_image(path.read_bytes(), 40_000_000)
        face = pick_largest(engine.detect(image))
        assert face is not None, path
        return engine.embed_faces(image, [face])[0]

    return one


@pytest.fixture(scope="module")
def labelled(faces_dir, embed) -> dict[str, np.ndarray]:
    """Every gallery photo's embedding, per person."""
    out: dict[str, list[np.ndarray]] = {}
    for path in sorted((faces_dir / "gallery").glob("*/*")):
        out.setdefault(path.parent.name, []).append(embed(path))
    return {name: np.stack(vectors) for name, vectors in out.items()}


def report_of(gallery: Gallery, threshold: float):
    return gallery_report(gallery.store.load_table(gallery.dim), threshold)


def test_distinct_people_enrolled_right_give_an_empty_report(engine, labelled):
    gallery = Gallery(MemoryStore(), engine.embedder.name, engine.embedder.dim)
    for name, vectors in labelled.items():
        gallery.enroll(name, vectors)
    report = report_of(gallery, engine.threshold)
    assert report.pairs == [] and report.flagged == []


def test_a_wrong_face_is_flagged_and_one_person_twice_is_suggested(engine, labelled, faces_dir, embed):
    gallery = Gallery(MemoryStore(), engine.embedder.name, engine.embedder.dim)
    for name, vectors in labelled.items():
        if name != "obama":
            gallery.enroll(name, vectors)
    obama = gallery.enroll("obama", np.vstack([labelled["obama"], embed(faces_dir / "probes/obama_3.jpg")]))
    wrong = gallery.enroll("obama", labelled["kit_harington"][:1])[0]  # a sibling's photo, say
    gallery.enroll(
        "Barack", np.stack([embed(faces_dir / p) for p in ("probes/obama_4.jpg", "resolution/obama_1080p.jpg")])
    )
    report = report_of(gallery, engine.threshold)
    assert [face for _, face, _ in report.flagged] == [wrong.face_id]
    assert report.flagged[0][0] == "obama" and report.flagged[0][2] < engine.threshold
    assert [(a, b) for a, b, _ in report.pairs] in ([("obama", "Barack")], [("Barack", "obama")])
    assert all(r.face_id != wrong.face_id for r in obama)


@pytest.fixture(params=["sqlite", "postgresql"])
def gallery_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "gallery.sqlite3")
    return request.getfixturevalue("pg_url")


def test_the_report_and_agreement_over_http(engine, faces_dir, gallery_url):
    settings = Settings(embedder="dlib-resnet", gallery=gallery_url, workers=1)
    gallery = Gallery.open(gallery_url, engine.embedder.name, engine.embedder.dim)
    photos = ["gallery/obama/1.jpg", "gallery/obama/2.jpg", "probes/obama_3.jpg", "gallery/biden/1.jpg"]
    files = [("image", (p, (faces_dir / p).read_bytes(), "image/jpeg")) for p in photos]
    with TestClient(create_app(settings, engine=engine, gallery=gallery)) as c:
        added = c.post("/identities/Obama/faces", files=files).json()["added"]
        shown = c.get("/identities/obama").json()["faces"]
        assert [f["flagged"] for f in shown] == [False, False, False, True]
        assert all(-1 <= f["agreement"] <= 1 for f in shown)
        report = c.get("/gallery/report").json()
        assert report == {
            "pairs": [],
            "flagged": [{"identity": "Obama", "face_id": added[3]["face_id"], "agreement": shown[3]["agreement"]}],
        }
        assert c.get("/gallery/report", params={"limit": 0}).status_code == 422
