"""The API's contract at its edges: what the OpenAPI spec declares, the 405 ``Allow`` header,
readable 422s, names in NFC, the optional read key, and the gallery's failures as status codes.

In process (TestClient) with the real engine and real faces; the gallery is in memory except
where a store that fails is what the test needs (the store is not what is under test there).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from inference_service.api import create_app
from inference_service.api.identities import NAME_PATTERN
from inference_service.config import Settings
from inference_service.gallery import (
    Gallery,
    GalleryFullError,
    GalleryUnavailableError,
    InvalidNameError,
    MemoryStore,
    validate_name,
)

WRITE_KEY, READ_KEY = "write-key-123", "read-key-456"


def upload(path: Path, field: str = "image") -> dict:
    return {field: (path.name, path.read_bytes(), "application/octet-stream")}


def memory_app(engine, gallery: Gallery | None = None, **settings):
    gallery = gallery or Gallery(MemoryStore(), engine.embedder.name, engine.embedder.dim)
    return create_app(Settings(embedder="dlib-resnet", **settings), engine=engine, gallery=gallery)


@pytest.fixture(scope="module")
def client(engine):
    with TestClient(memory_app(engine)) as c:
        yield c


# ---------------------------------------------------------------------------------------------
# 405 and the spec
def test_405_allow_lists_every_method_of_the_path(client):
    r = client.put("/identities/someone")
    assert r.status_code == 405
    assert {m.strip() for m in r.headers["Allow"].split(",")} == {"GET", "PATCH", "DELETE"}
    assert isinstance(r.json()["detail"], str)
    r = client.get("/identities/someone/faces")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    r = client.post("/identities/someone/faces/abc")
    assert r.status_code == 405 and r.headers["Allow"] == "DELETE"


def upload_schemas(spec: dict) -> dict[str, dict]:
    """Each multipart file field of the spec: 'operation.field' -> its string schema."""
    out = {}
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            content = op.get("requestBody", {}).get("content", {}).get("multipart/form-data")
            if not content:
                continue
            body = content["schema"]
            if "$ref" in body:
                body = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
            for field, schema in body["properties"].items():
                if field.startswith("image"):
                    out[f"{method.upper()} {path} {field}"] = schema.get("items", schema)
    return out


def test_spec_declares_uploads_binary_and_the_name_pattern(client):
    spec = client.get("/openapi.json").json()
    uploads = upload_schemas(spec)
    assert len(uploads) == 6  # detect, embed, recognize, verify x2, enroll
    for where, schema in uploads.items():
        assert schema.get("format") == "binary", where
    for path in ("/identities/{name}", "/identities/{name}/faces", "/identities/{name}/faces/{face_id}"):
        for op in spec["paths"][path].values():
            (param,) = [p for p in op["parameters"] if p["name"] == "name"]
            assert param["schema"]["pattern"] == NAME_PATTERN
            assert (param["schema"]["minLength"], param["schema"]["maxLength"]) == (1, 64)


def accepted(name: str) -> bool:
    try:
        validate_name(name)
        return True
    except InvalidNameError:
        return False


def test_name_pattern_admits_every_name_validate_name_admits():
    """validate_name is the check; the spec's pattern must never refuse a name it accepts."""
    pattern = re.compile(NAME_PATTERN)
    wrongly_refused = []
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        for name in (char, f"a{char}b", f"'{char}"):
            if accepted(name) and not pattern.search(unicodedata.normalize("NFC", name)):
                wrongly_refused.append(name)
    assert wrongly_refused == []
    for name in ("Zoë", "Nguyễn Văn An", "Ὀδυσσεύς", "Пётр", "王小明", "O'Brien", "J.-P. Sartre", "_x_", "' a"):
        assert accepted(name) and pattern.search(name), name
    # And it says the rule as far as a regex can: these are refused by both.
    for name in ("", " a", "a ", "-", "'", "...", "' ", "a×b", "a÷b", "a/b", "a;b", "a\u2014b", "a\x00"):
        assert not accepted(name) and not pattern.search(name), repr(name)


def test_image_sent_as_text_is_a_readable_422(client):
    r = client.post("/detect", data={"image": "photo.jpg"})
    assert r.status_code == 422
    assert r.json() == {"detail": "field 'image' must be a file upload"}
    r = client.post("/identities/someone/faces", data={"image": "photo.jpg"})
    assert r.status_code == 422
    assert r.json() == {"detail": "field 'image' must be a file upload"}
    r = client.post("/verify", data={"image_a": "a.jpg"})
    assert r.json() == {"detail": "field 'image_a' must be a file upload; field 'image_b' is required"}


# ---------------------------------------------------------------------------------------------
# names
def test_identity_routes_use_the_nfc_name(client, faces_dir):
    nfd, nfc = "Zoe\u0308 Test", "Zo\u00eb Test"
    assert nfd != nfc and unicodedata.normalize("NFC", nfd) == nfc
    r = client.post(f"/identities/{nfd}/faces", files=upload(faces_dir / "gallery/biden/1.jpg"))
    assert r.status_code == 201, r.text
    assert r.json()["identity"] == nfc and r.json()["faces"] == 1
    for spelling in (nfd, nfc):
        shown = client.get(f"/identities/{spelling}")
        assert shown.status_code == 200, shown.text
        assert shown.json()["name"] == nfc
    assert nfc in {i["name"] for i in client.get("/identities").json()["identities"]}
    face_id = r.json()["added"][0]["face_id"]
    assert client.delete(f"/identities/{nfd}/faces/{face_id}").status_code == 204
    assert client.get(f"/identities/{nfc}").status_code == 404


# ---------------------------------------------------------------------------------------------
# the read key
READ_ROUTES = [
    ("post", "/detect"),
    ("post", "/embed"),
    ("post", "/recognize"),
    ("get", "/identities"),
    ("get", "/identities/biden"),
]


def test_read_key_closes_reads_and_either_key_opens_them(engine, faces_dir):
    photo = faces_dir / "gallery/biden/1.jpg"
    app = memory_app(engine, api_key=WRITE_KEY, read_api_key=READ_KEY)
    with TestClient(app) as c:
        assert (
            c.post("/identities/biden/faces", files=upload(photo), headers={"X-API-Key": WRITE_KEY}).status_code == 201
        )

        def call(method: str, path: str, key: str | None):
            headers = {"X-API-Key": key} if key else {}
            files = upload(photo) if method == "post" else None
            return getattr(c, method)(path, files=files, headers=headers) if files else c.get(path, headers=headers)

        for method, path in READ_ROUTES:
            for key in (None, "wrong", READ_KEY[:-1]):
                r = call(method, path, key)
                assert r.status_code == 401, (path, key, r.text)
                assert "X-API-Key" in r.json()["detail"]
            for key in (READ_KEY, WRITE_KEY):
                assert call(method, path, key).status_code == 200, (path, key)
        verify_files = upload(photo, "image_a") | upload(photo, "image_b")
        assert c.post("/verify", files=verify_files).status_code == 401
        r = c.post("/verify", files=verify_files, headers={"X-API-Key": READ_KEY})
        assert r.status_code == 200 and r.json()["same"] is True
        assert c.get("/health").status_code == 200  # probes stay open
        # The read key does not open writes.
        assert c.post("/identities/x/faces", files=upload(photo), headers={"X-API-Key": READ_KEY}).status_code == 401
        assert c.delete("/identities/biden", headers={"X-API-Key": READ_KEY}).status_code == 401


def test_without_a_read_key_reads_stay_open(engine, faces_dir):
    with TestClient(memory_app(engine, api_key=WRITE_KEY)) as c:
        assert c.post("/detect", files=upload(faces_dir / "gallery/biden/1.jpg")).status_code == 200
        assert c.get("/identities").status_code == 200


# ---------------------------------------------------------------------------------------------
# the gallery's failures
class FailingStore(MemoryStore):
    """A store whose writes raise ``error``: stands in for a full disk or a lost database server."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def add_faces(self, records):
        raise self.error

    def delete_identity(self, identity):
        raise self.error


def test_full_disk_is_507_and_nothing_is_stored(engine, faces_dir):
    gallery = Gallery(
        FailingStore(GalleryFullError("database or disk is full")), engine.embedder.name, engine.embedder.dim
    )
    with TestClient(memory_app(engine, gallery=gallery)) as c:
        r = c.post("/identities/biden/faces", files=upload(faces_dir / "gallery/biden/1.jpg"))
        assert r.status_code == 507, r.text
        assert "disk is full" in r.json()["detail"] and "nothing" in r.json()["detail"]
        assert c.get("/identities/biden").status_code == 404
        assert c.get("/health").json()["gallery"] == {"identities": 0, "faces": 0}
        assert c.delete("/identities/biden").status_code == 507


def test_unreachable_gallery_is_503_with_retry_after(engine, faces_dir):
    error = GalleryUnavailableError("connection refused by db.internal:5432")
    error.retry_after_s = 7
    gallery = Gallery(FailingStore(error), engine.embedder.name, engine.embedder.dim)
    with TestClient(memory_app(engine, gallery=gallery)) as c:
        r = c.post("/identities/biden/faces", files=upload(faces_dir / "gallery/biden/1.jpg"))
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "7"
        assert "unavailable" in r.json()["detail"]
        assert "db.internal" not in r.text  # the client learns that, not where the database is


def test_any_case_reaches_one_person_shown_in_the_first_spelling(engine, faces_dir):
    with TestClient(memory_app(engine)) as c:
        first = c.post("/identities/Biden/faces", files=upload(faces_dir / "gallery/biden/1.jpg"))
        assert first.status_code == 201 and first.json()["identity"] == "Biden"
        again = c.post("/identities/BIDEN/faces", files=upload(faces_dir / "gallery/biden/1.jpg"))
        assert again.status_code == 201, again.text
        assert again.json()["identity"] == "Biden" and again.json()["faces"] == 2
        shown = c.get("/identities/biden")
        assert shown.status_code == 200 and shown.json()["name"] == "Biden"
        assert [i["name"] for i in c.get("/identities").json()["identities"]] == ["Biden"]
