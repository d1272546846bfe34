"""A person's history is their own: a reused name starts afresh, every enrollment's consent is kept,
and a consent nobody can read is no consent. Against SQLite and a real PostgreSQL, through the
real API (real models, real faces), checked in the database itself, not only in the answers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from inference_service.api.app import create_app
from inference_service.config import Settings
from inference_service.gallery import Gallery

KEYS = {"default": "key-default", "cam": "key-cam", "ops": "key-ops"}


def headers(label: str) -> dict:
    return {"X-API-Key": KEYS[label]}


def photo(faces_dir: Path, rel: str) -> list:
    path = faces_dir / rel
    return [("image", (path.name, path.read_bytes(), "image/jpeg"))]


@pytest.fixture(params=["sqlite", "postgresql"])
def gallery_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "gallery.sqlite3")
    return request.getfixturevalue("pg_url")


def make_client(engine, url: str, **settings) -> TestClient:
    options = dict(
        embedder="dlib-resnet", gallery=url, api_key=KEYS["default"], api_keys="cam:key-cam,ops:key-ops", workers=1
    )
    options.update(settings)
    gallery = Gallery.open(url, engine.embedder.name, engine.embedder.dim)
    return TestClient(create_app(Settings(**options), engine=engine, gallery=gallery))


def stored(url: str, sql_sqlite: str, sql_pg: str, *args) -> list[tuple]:
    """Rows straight from the gallery's database."""
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url) as db:
            return [tuple(row) for row in db.execute(sql_pg, args).fetchall()]
    with sqlite3.connect(url) as db:
        return db.execute(sql_sqlite, args).fetchall()


def consents_of(url: str, name: str) -> list[tuple]:
    return stored(
        url,
        "SELECT c.consent, c.key_label FROM consents c JOIN identities i ON i.uid = c.identity_uid "
        "WHERE i.name_key = ? ORDER BY c.seq",
        "SELECT c.consent, c.key_label FROM gallery_consents c JOIN gallery_identities i ON i.uid = c.identity_uid "
        "WHERE i.name_key = %s ORDER BY c.seq",
        name,
    )


def all_consents(url: str) -> list[tuple]:
    return stored(url, "SELECT consent FROM consents", "SELECT consent FROM gallery_consents")


def enroll(c: TestClient, faces_dir: Path, name: str, rel: str, label: str, consent: str | None) -> dict:
    r = c.post(
        f"/identities/{name}/faces",
        headers=headers(label),
        files=photo(faces_dir, rel),
        data={} if consent is None else {"consent": consent},
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_a_reused_name_does_not_inherit_the_erased_persons_history(engine, faces_dir, gallery_url):
    with make_client(engine, gallery_url) as c:
        first = enroll(c, faces_dir, "Chris Lee", "gallery/obama/1.jpg", "cam", "form of the first person")
        assert c.get("/identities/chris%20lee/export", headers=headers("cam")).status_code == 200
        assert c.delete("/identities/Chris%20Lee", headers=headers("default")).status_code == 204
        second = enroll(c, faces_dir, "chris lee", "gallery/biden/1.jpg", "ops", "form of the second person")
        document = c.get("/identities/CHRIS%20LEE/export", headers=headers("ops")).json()
    assert document["name"] == "chris lee"
    assert [(e["action"], e["key_label"]) for e in document["audit"]] == [("enroll", "ops"), ("export", "ops")]
    assert document["audit"][0]["face_ids"] == [second["added"][0]["face_id"]]
    assert [entry["text"] for entry in document["consents"]] == ["form of the second person"]
    # the trail itself keeps the first person's events (an erase stays provable), under another uid
    rows = stored(
        gallery_url,
        "SELECT action, identity_uid FROM audit WHERE name_key = 'chris lee' ORDER BY seq",
        "SELECT action, identity_uid FROM gallery_audit WHERE name_key = 'chris lee' ORDER BY seq",
    )
    assert [action for action, _ in rows] == ["enroll", "export", "delete_identity", "enroll", "export"]
    assert len({uid for _, uid in rows[:3]}) == 1 and len({uid for _, uid in rows[3:]}) == 1
    assert rows[0][1] != rows[3][1] and None not in {uid for _, uid in rows}
    assert first["added"][0]["face_id"] not in str(document)
    # the first person's consent went with them: the database holds the second person's only
    assert all_consents(gallery_url) == [("form of the second person",)]


def test_every_enrollments_consent_is_kept_and_audited(engine, faces_dir, gallery_url):
    with make_client(engine, gallery_url) as c:
        enroll(c, faces_dir, "Obama", "gallery/obama/1.jpg", "cam", "form 1")
        enroll(c, faces_dir, "obama", "gallery/obama/2.jpg", "ops", "form 2")
        enroll(c, faces_dir, "Obama", "gallery/obama/1.jpg", "ops", None)  # no consent: history unchanged
        shown = c.get("/identities/Obama", headers=headers("cam")).json()
        document = c.get("/identities/Obama/export", headers=headers("ops")).json()
        events = c.get("/audit", params={"action": "enroll"}, headers=headers("ops")).json()["events"]
        assert consents_of(gallery_url, "obama") == [("form 1", "cam"), ("form 2", "ops")]
        assert shown["consent"]["text"] == "form 2"  # the latest, as before
        assert [(e["text"], e["key_label"]) for e in document["consents"]] == [("form 1", "cam"), ("form 2", "ops")]
        assert [e["consent"] for e in events] == ["form 1", "form 2", None]
        assert [e["consent"] for e in document["audit"] if e["action"] == "enroll"] == ["form 1", "form 2", None]
        assert c.delete("/identities/obama", headers=headers("default")).status_code == 204
    assert all_consents(gallery_url) == []  # erasing a person erases their consent history too


@pytest.mark.parametrize("invisible", ["\u200b", " \u200b\u2060 ", "\ufeff", "\u200d\u200c"])
def test_a_consent_nobody_can_read_is_refused_where_consent_is_required(engine, faces_dir, tmp_path, invisible):
    url = str(tmp_path / "gallery.sqlite3")
    with make_client(engine, url, require_consent=True) as c:
        r = c.post(
            "/identities/Ada/faces",
            headers=headers("cam"),
            files=photo(faces_dir, "gallery/obama/1.jpg"),
            data={"consent": invisible},
        )
        assert r.status_code == 422 and "FACE_REQUIRE_CONSENT" in r.json()["detail"], r.text
        assert c.get("/identities", headers=headers("cam")).json()["identities"] == []
        enroll(c, faces_dir, "Ada", "gallery/obama/1.jpg", "cam", "\u200bsigned\u200b form 7")
    assert stored(url, "SELECT consent FROM identities", "") == [("\u200bsigned\u200b form 7",)]
    assert stored(url, "SELECT count(*) FROM audit", "") == [(1,)]
