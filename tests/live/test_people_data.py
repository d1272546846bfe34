"""People's data: consent records, retention with a sweeper, export and the audit trail, against
SQLite and a real PostgreSQL, through the real API (real models, real faces).

Expiry across replicas runs two real API processes on one PostgreSQL gallery.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import requests
from fastapi.testclient import TestClient

from inference_service.api.app import create_app
from inference_service.config import Settings
from inference_service.gallery import Gallery, open_store, sqlite_file
from inference_service.gallery.audit import AuditQuery

KEYS = {"default": "key-default", "cam": "key-cam", "ops": "key-ops"}
READ_KEY = "key-read"


def headers(label: str | None) -> dict:
    return {"X-API-Key": KEYS[label]} if label else {}


def photo(faces_dir: Path, rel: str) -> list:
    path = faces_dir / rel
    return [("image", (path.name, path.read_bytes(), "image/jpeg"))]


def soon(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


@pytest.fixture(params=["sqlite", "postgresql"])
def gallery_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "gallery.sqlite3")
    return request.getfixturevalue("pg_url")


def make_client(engine, url: str, **settings) -> TestClient:
    options = dict(
        embedder="dlib-resnet",
        gallery=url,
        api_key=KEYS["default"],
        api_keys="cam:key-cam,ops:key-ops",
        read_api_key=READ_KEY,
        workers=1,
    )
    options.update(settings)
    gallery = Gallery.open(url, engine.embedder.name, engine.embedder.dim)
    return TestClient(create_app(Settings(**options), engine=engine, gallery=gallery))


def audit(client: TestClient, label: str = "ops", **params) -> list[dict]:
    r = client.get("/audit", params=params, headers=headers(label))
    assert r.status_code == 200, r.text
    return r.json()["events"]


def database_rows(url: str, name: str) -> dict:
    """What the database itself holds about ``name``: identity row and faces (id -> vector, box, time)."""
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url) as db:
            ident = db.execute(
                "SELECT id, consent, consent_by, expires_at FROM gallery_identities WHERE name_key = lower(%s)", (name,)
            ).fetchone()
            if ident is None:
                return {}
            faces = {
                fid.hex: (np.frombuffer(blob, "<f4"), list(box), created)
                for fid, blob, created, *box in db.execute(
                    "SELECT face_id, embedding, created_at, box_x1, box_y1, box_x2, box_y2 FROM gallery_faces "
                    "WHERE identity_id = %s",
                    (ident[0],),
                )
            }
            return {"consent": ident[1], "consent_by": ident[2], "faces": faces}
    with sqlite3.connect(url) as db:
        ident = db.execute(
            "SELECT name, consent, consent_by, expires_at FROM identities WHERE name_key = lower(?)", (name,)
        ).fetchone()
        if ident is None:
            return {}
        faces = {
            fid: (np.frombuffer(blob, "<f4"), list(box), created)
            for fid, blob, created, *box in db.execute(
                "SELECT face_id, embedding, created_at, box_x1, box_y1, box_x2, box_y2 FROM faces WHERE identity = ?",
                (ident[0],),
            )
        }
        return {"consent": ident[1], "consent_by": ident[2], "faces": faces}


def test_consent_required_stored_and_shown(engine, faces_dir, gallery_url):
    with make_client(engine, gallery_url, require_consent=True) as c:
        r = c.post("/identities/Obama/faces", files=photo(faces_dir, "gallery/obama/1.jpg"), headers=headers("cam"))
        assert r.status_code == 422 and "FACE_REQUIRE_CONSENT" in r.json()["detail"]
        r = c.post(
            "/identities/Obama/faces",
            files=photo(faces_dir, "gallery/obama/1.jpg"),
            data={"consent": "x" * 201},
            headers=headers("cam"),
        )
        assert r.status_code == 422 and "200" in r.json()["detail"]
        assert c.get("/identities", headers={"X-API-Key": READ_KEY}).json()["identities"] == []
        r = c.post(
            "/identities/Obama/faces",
            files=photo(faces_dir, "gallery/obama/1.jpg"),
            data={"consent": "signed form 2026-03-14"},
            headers=headers("cam"),
        )
        assert r.status_code == 201, r.text
        shown = c.get("/identities/obama", headers={"X-API-Key": READ_KEY}).json()
        assert shown["consent"]["text"] == "signed form 2026-03-14"
        assert shown["consent"]["key_label"] == "cam"
        assert shown["consent"]["given_at"] == shown["faces"][0]["created_at"]
        assert shown["expires_at"] is None
        listed = c.get("/identities", headers={"X-API-Key": READ_KEY}).json()["identities"]
        assert listed == [{"name": "Obama", "faces": 1, "consent": shown["consent"]}]
    stored = database_rows(gallery_url, "obama")
    assert stored["consent"] == "signed form 2026-03-14" and stored["consent_by"] == "cam"


def test_every_action_audited_once_with_its_key_label(engine, faces_dir, gallery_url):
    with make_client(engine, gallery_url) as c:
        r = c.post(
            "/identities/Biden/faces",
            headers=headers("cam"),
            files=photo(faces_dir, "gallery/biden/1.jpg") + photo(faces_dir, "gallery/biden/2.jpg"),
        )
        assert r.status_code == 201, r.text
        ids = [a["face_id"] for a in r.json()["added"]]
        assert c.get("/identities/biden/export", headers=headers("ops")).status_code == 200
        assert c.delete(f"/identities/biden/faces/{ids[0]}", headers=headers("ops")).status_code == 204
        assert c.delete("/identities/BIDEN", headers=headers("default")).status_code == 204
        events = audit(c)
        assert [(e["action"], e["identity"], e["face_ids"], e["key_label"]) for e in events] == [
            ("enroll", "Biden", ids, "cam"),
            ("export", "Biden", ids, "ops"),
            ("delete_face", "Biden", ids[:1], "ops"),
            ("delete_identity", "Biden", ids[1:], "default"),
        ]
        assert all(e["client"] == "testclient" for e in events)
        assert not any("embedding" in e for e in events)
        # filters and pages
        assert [e["action"] for e in audit(c, action="export")] == ["export"]
        assert len(audit(c, identity="biden")) == 4 and audit(c, identity="nobody") == []
        first = events[0]["at"]
        assert len(audit(c, since=first)) == 4 and audit(c, until=first) == []
        page = c.get("/audit", params={"limit": 3}, headers=headers("cam")).json()
        rest = c.get("/audit", params={"limit": 3, "after": page["next_after"]}, headers=headers("cam")).json()
        assert [e["seq"] for e in page["events"] + rest["events"]] == [e["seq"] for e in events]
        assert rest["next_after"] is None
        # keys without the right: none, a wrong one, the read key
        for bad in ({}, {"X-API-Key": "nope"}, {"X-API-Key": READ_KEY}):
            assert c.get("/audit", headers=bad).status_code == 401
            assert c.get("/identities/biden/export", headers=bad).status_code == 401
            assert (
                c.post("/identities/x/faces", files=photo(faces_dir, "gallery/biden/1.jpg"), headers=bad).status_code
                == 401
            )
        assert c.get("/audit", params={"since": "yesterday"}, headers=headers("ops")).status_code == 422
        assert len(audit(c)) == 4  # refused calls leave no row


def test_export_holds_exactly_what_the_database_holds(engine, faces_dir, gallery_url):
    with make_client(engine, gallery_url) as c:
        until = soon(3600)
        r = c.post(
            "/identities/Rose Leslie/faces",
            headers=headers("cam"),
            data={"consent": "email 12", "expires_at": until},
            files=photo(faces_dir, "gallery/rose_leslie/1.jpg") + photo(faces_dir, "gallery/rose_leslie/2.jpg"),
        )
        assert r.status_code == 201, r.text
        c.post("/identities/Obama/faces", headers=headers("cam"), files=photo(faces_dir, "gallery/obama/1.jpg"))
        r = c.get("/identities/rose leslie/export", headers=headers("ops"))
        assert r.status_code == 200, r.text
        doc = r.json()
        assert c.get("/identities/nobody/export", headers=headers("ops")).status_code == 404
    stored = database_rows(gallery_url, "rose leslie")
    assert doc["name"] == "Rose Leslie"
    assert doc["consent"]["text"] == "email 12" and doc["consent"]["key_label"] == "cam"
    assert datetime.fromisoformat(doc["expires_at"]) == datetime.fromisoformat(until)
    assert {f["face_id"] for f in doc["faces"]} == set(stored["faces"])
    for face in doc["faces"]:
        vector, box, _ = stored["faces"][face["face_id"]]
        assert np.array_equal(np.asarray(face["embedding"], np.float32), vector)
        assert face["box"] == pytest.approx(box)
    assert [(e["action"], e["identity"]) for e in doc["audit"]] == [
        ("enroll", "Rose Leslie"),
        ("export", "Rose Leslie"),
    ]


def test_sweeper_erases_an_expired_identity_from_the_file(engine, faces_dir, tmp_path):
    db_path = tmp_path / "gallery.sqlite3"
    with make_client(engine, str(db_path), retention_sweep_s=0.3) as c:
        r = c.post(
            "/identities/Temp/faces",
            headers=headers("cam"),
            data={"expires_at": soon(2)},
            files=photo(faces_dir, "gallery/obama/1.jpg") + photo(faces_dir, "gallery/obama/2.jpg"),
        )
        assert r.status_code == 201, r.text
        c.post("/identities/Stays/faces", headers=headers("cam"), files=photo(faces_dir, "gallery/biden/1.jpg"))
        with sqlite3.connect(db_path) as db:
            blobs = [row[0] for row in db.execute("SELECT embedding FROM faces WHERE identity = 'Temp'")]
            expires = db.execute("SELECT expires_at FROM identities WHERE name = 'Temp'").fetchone()[0]
        assert len(blobs) == 2
        assert c.get("/health").json()["gallery"]["next_expiry"] == expires
        on_disk = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
        assert all(blob in on_disk for blob in blobs)
        deadline = time.monotonic() + 10
        while c.get("/identities/Temp", headers={"X-API-Key": READ_KEY}).status_code != 404:
            assert time.monotonic() < deadline, "not erased within 10 s"
            time.sleep(0.1)
        assert "next_expiry" not in c.get("/health").json()["gallery"]
        expired = audit(c, action="expire")
        assert [(e["identity"], e["key_label"], len(e["face_ids"])) for e in expired] == [("Temp", "retention", 2)]
        assert c.get("/identities/Stays", headers={"X-API-Key": READ_KEY}).status_code == 200
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT COUNT(*) FROM faces WHERE identity = 'Temp'").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM identities WHERE name = 'Temp'").fetchone()[0] == 0
    on_disk = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    assert not any(blob in on_disk for blob in blobs)


def test_retention_days_sets_the_default_expiry(engine, faces_dir, gallery_url):
    with make_client(engine, gallery_url, retention_days=30) as c:
        c.post("/identities/Obama/faces", headers=headers("cam"), files=photo(faces_dir, "gallery/obama/1.jpg"))
        shown = c.get("/identities/Obama", headers={"X-API-Key": READ_KEY}).json()
        left = datetime.fromisoformat(shown["expires_at"]) - datetime.now(UTC)
        assert timedelta(days=29, hours=23) < left <= timedelta(days=30)
        r = c.post(
            "/identities/Obama/faces",
            headers=headers("cam"),
            data={"expires_at": "2020-01-01T00:00:00Z"},
            files=photo(faces_dir, "gallery/obama/1.jpg"),
        )
        assert r.status_code == 422 and "past" in r.json()["detail"]
        r = c.post(
            "/identities/Obama/faces",
            headers=headers("cam"),
            data={"expires_at": "2030-01-01T00:00:00"},
            files=photo(faces_dir, "gallery/obama/1.jpg"),
        )
        assert r.status_code == 422 and "offset" in r.json()["detail"]


@pytest.mark.parametrize("forget", [False, True])
def test_forgetting_names_keeps_the_erase_row(engine, faces_dir, gallery_url, forget):
    with make_client(engine, gallery_url, audit_forget_names=forget) as c:
        c.post("/identities/Biden/faces", headers=headers("cam"), files=photo(faces_dir, "gallery/biden/1.jpg"))
        c.get("/identities/Biden/export", headers=headers("ops"))
        assert c.delete("/identities/Biden", headers=headers("ops")).status_code == 204
        names = [(e["action"], e["identity"]) for e in audit(c)]
    kept = None if forget else "Biden"
    assert names == [("enroll", kept), ("export", kept), ("delete_identity", "Biden")]


def test_older_schemas_are_upgraded(tmp_path, pg_url):
    # SQLite version 2 (the release before consent and audit), built as it built it
    path = tmp_path / "v2.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    sqlite_file._run(db, sqlite_file.SCHEMA_V1)
    sqlite_file._run(db, sqlite_file._V1_TO_V2)
    db.execute(sqlite_file._V2_INDEX)
    db.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    db.execute(f"PRAGMA application_id = {sqlite_file.APPLICATION_ID}")
    db.execute("INSERT INTO identities(name, name_key, created_at) VALUES ('Ada', 'ada', '2026-01-01T00:00:00+00:00')")
    db.close()
    store = open_store(path, "dlib-resnet", 128)
    assert store.identity_terms("ada").consent is None
    store.close()
    assert sqlite_file.identify(path).schema_version == sqlite_file.SCHEMA_VERSION  # upgraded to the latest
    # PostgreSQL version 1
    import psycopg

    from inference_service.gallery import pg_store

    with psycopg.connect(pg_url) as conn:
        conn.execute(pg_store._SCHEMA)
        conn.execute("INSERT INTO gallery_meta VALUES ('schema_version', '1')")
    store = open_store(pg_url, "dlib-resnet", 128)
    store.close()
    with psycopg.connect(pg_url) as conn:
        version = conn.execute("SELECT value FROM gallery_meta WHERE key = 'schema_version'").fetchone()[0]
        assert version == str(pg_store.SCHEMA_VERSION)
        assert conn.execute("SELECT count(*) FROM gallery_audit").fetchone()[0] == 0


def test_expiry_erases_on_every_replica(pg_server, faces_dir, tmp_path):
    """Two real API processes sweeping one PostgreSQL gallery: the person goes from both, from the
    database, and exactly one expire row records it."""
    from support.live_servers import start_api

    url = pg_server.create_database("expiry_replicas")
    env = dict(FACE_SYNC_POLL_S="1", FACE_WORKERS="1", FACE_RETENTION_SWEEP_S="0.5", FACE_API_KEYS="cam:key-cam")
    apis = [start_api(tmp_path, url, name=f"api{i}", **env) for i in (1, 2)]
    try:
        path = faces_dir / "gallery/obama/1.jpg"
        r = requests.post(
            f"{apis[0].url}/identities/Temp/faces",
            headers={"X-API-Key": "key-cam"},
            files={"image": (path.name, path.read_bytes(), "image/jpeg")},
            data={"expires_at": soon(2), "consent": "verbal, recorded"},
            timeout=120,
        )
        assert r.status_code == 201, r.text

        def listed(api) -> list[str]:
            return [i["name"] for i in requests.get(f"{api.url}/identities", timeout=10).json()["identities"]]

        deadline = time.monotonic() + 3
        while listed(apis[1]) != ["Temp"]:
            assert time.monotonic() < deadline, "the second replica never listed the person"
            time.sleep(0.05)
        deadline = time.monotonic() + 15
        while any(listed(api) for api in apis):
            assert time.monotonic() < deadline, "not erased on every replica within 15 s"
            time.sleep(0.1)
        assert requests.get(f"{apis[0].url}/identities/Temp", timeout=10).status_code == 404
        assert database_rows(url, "temp") == {}
        time.sleep(1.5)  # both sweepers ran again meanwhile: still one erase
        events = requests.get(f"{apis[1].url}/audit", headers={"X-API-Key": "key-cam"}, timeout=10).json()["events"]
        assert [(e["action"], e["key_label"]) for e in events] == [("enroll", "cam"), ("expire", "retention")]
    finally:
        for api in apis:
            api.stop()


def test_site_sends_what_was_ticked_and_typed_and_shows_it(faces_dir, tmp_path):
    """The real site (Flask test client) against a real API that requires consent."""
    import io
    import re

    from web_frontend.app import create_app as create_site
    from web_frontend.config import WebSettings

    from support.live_servers import start_api

    api = start_api(
        tmp_path,
        tmp_path / "gallery.sqlite3",
        FACE_REQUIRE_CONSENT="true",
        FACE_API_KEY="site-key",
        FACE_RETENTION_DAYS="30",
    )
    try:
        site = create_site(WebSettings(api_url=api.url, secret_key="t", api_key="site-key")).test_client()

        def enroll(note: str):
            page = site.get("/enroll").get_data(as_text=True)
            token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            form = {
                "csrf_token": token,
                "name": "Obama",
                "consent": "yes",
                "consent_note": note,
                "photos": [(io.BytesIO((faces_dir / "gallery/obama/1.jpg").read_bytes()), "1.jpg")],
            }
            return site.post("/enroll", data=form, content_type="multipart/form-data")

        assert enroll("x" * 141).status_code == 400
        assert enroll("signed\nform 12").status_code == 200
        shown = requests.get(f"{api.url}/identities/Obama", timeout=10).json()
        assert shown["consent"]["text"] == "agreed (ticked on the site's Enroll form): signed form 12"
        assert shown["consent"]["key_label"] == "default"
        page = site.get("/gallery/person", query_string={"name": "obama"}).get_data(as_text=True)
        assert "agreed (ticked on the site&#39;s Enroll form): signed form 12" in page
        assert shown["expires_at"][:16].replace("T", " ") in page
    finally:
        api.stop()


def test_pipeline_enroll_into_a_gallery_file_records_consent(tmp_path):
    from pipeline.video.enroll import _enroll_gallery

    path = tmp_path / "gallery.sqlite3"
    vectors = np.eye(2, 128, dtype=np.float32)
    faces = [{"box": [0, 0, 10, 10]}, {"box": [5, 5, 20, 20]}]
    _enroll_gallery(path, {"name": "dlib-resnet", "dim": 128}, "Ada", faces, vectors, "signed form 7")
    store = open_store(path, "dlib-resnet", 128)
    try:
        terms = store.identity_terms("ada")
        events = store.audit_events(AuditQuery())
    finally:
        store.close()
    assert (terms.consent, terms.consent_by) == ("signed form 7", "pipeline")
    assert [(e.action, e.key_label, len(e.face_ids)) for e in events] == [("enroll", "pipeline", 2)]


def test_malformed_labelled_keys_stop_the_start_without_showing_them(tmp_path):
    import subprocess
    import sys

    from support.live_servers import REPO, clean_env

    for keys, extra, words in (
        ("cam=secret-one", {}, "not label:key"),
        ("cam:secret-one,cam:secret-two", {}, "appears twice"),
        ("default:secret-one", {"FACE_API_KEY": "secret-two"}, "'default'"),
    ):
        env = clean_env(FACE_API_KEYS=keys, FACE_GALLERY=str(tmp_path / "g.sqlite3"), **extra)
        done = subprocess.run(
            [sys.executable, "-m", "inference_service"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, done.stderr
        assert "cannot start" in done.stderr and words in done.stderr
        assert "secret" not in done.stderr + done.stdout


def test_copy_carries_consent_and_expiry_both_ways(engine, faces_dir, tmp_path, pg_url):
    from inference_service.gallery.__main__ import copy_gallery

    src = str(tmp_path / "src.sqlite3")
    until = soon(86_400)
    with make_client(engine, src) as c:
        r = c.post(
            "/identities/Obama/faces",
            headers=headers("cam"),
            data={"consent": "form 3", "expires_at": until},
            files=photo(faces_dir, "gallery/obama/1.jpg"),
        )
        assert r.status_code == 201, r.text
    back = str(tmp_path / "back.sqlite3")
    for a, b in ((src, pg_url), (pg_url, back)):
        copy_gallery(a, b)
        store = open_store(b)
        try:
            terms = store.identity_terms("obama")
        finally:
            store.close()
        assert (terms.consent, terms.consent_by) == ("form 3", "cam")
        assert datetime.fromisoformat(terms.expires_at) == datetime.fromisoformat(until)
