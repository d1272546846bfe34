"""Curating the gallery: rename, merge and move a face, against SQLite and a real PostgreSQL,
through the real API (real models, real faces), checked in the database and the audit trail;
and on PostgreSQL a second replica that follows every change whole."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from inference_service.api.app import create_app
from inference_service.config import Settings
from inference_service.gallery import Gallery, curation
from inference_service.gallery.audit import Actor, AuditQuery, WriteContext, acting
from inference_service.gallery.replica import start_sync

from support.records import DIM, EMBEDDER, make_records

KEYS = {"default": "key-default", "cam": "key-cam", "ops": "key-ops"}
READ = {"X-API-Key": "key-read"}


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


@pytest.fixture
def client(engine, gallery_url):
    settings = Settings(
        embedder="dlib-resnet",
        gallery=gallery_url,
        api_key=KEYS["default"],
        api_keys="cam:key-cam,ops:key-ops",
        read_api_key="key-read",
        workers=1,
        require_consent=True,
    )
    gallery = Gallery.open(gallery_url, engine.embedder.name, engine.embedder.dim)
    with TestClient(create_app(settings, engine=engine, gallery=gallery)) as c:
        yield c


def enroll(c: TestClient, faces_dir: Path, name: str, rels: list[str], consent: str) -> list[str]:
    files = [part for rel in rels for part in photo(faces_dir, rel)]
    r = c.post(f"/identities/{name}/faces", headers=headers("cam"), files=files, data={"consent": consent})
    assert r.status_code == 201, r.text
    return [a["face_id"] for a in r.json()["added"]]


def stored_faces(url: str) -> dict[str, str]:
    """face id -> identity name, read from the database itself."""
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url) as db:
            rows = db.execute(
                "SELECT f.face_id, i.name FROM gallery_faces f JOIN gallery_identities i ON i.id = f.identity_id"
            ).fetchall()
            return {fid.hex: name for fid, name in rows}
    with sqlite3.connect(url) as db:
        return dict(db.execute("SELECT face_id, identity FROM faces").fetchall())


def test_rename_keeps_faces_history_and_consent(client, faces_dir, gallery_url):
    c = client
    ids = enroll(c, faces_dir, "barak obama", ["gallery/obama/1.jpg", "gallery/obama/2.jpg"], "form 1")
    enroll(c, faces_dir, "Biden", ["gallery/biden/1.jpg"], "form B")
    assert c.patch("/identities/barak%20obama", json={"name": "Biden"}, headers=headers("ops")).status_code == 409
    r = c.patch("/identities/BARAK%20OBAMA", json={"name": "Barack Obama"}, headers=READ)
    assert r.status_code == 401
    r = c.patch("/identities/BARAK%20OBAMA", json={"name": "Barack Obama"}, headers=headers("ops"))
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "Barack Obama", "faces": 2, "moved": ids}
    assert c.patch("/identities/nobody", json={"name": "X"}, headers=headers("ops")).status_code == 404
    assert c.patch("/identities/Biden", json={"name": "../x"}, headers=headers("ops")).status_code == 422
    # a change of case only is a rename too
    r = c.patch("/identities/barack%20obama", json={"name": "BARACK OBAMA"}, headers=headers("ops"))
    assert r.status_code == 200 and r.json()["name"] == "BARACK OBAMA"
    assert stored_faces(gallery_url) == {
        **dict.fromkeys(ids, "BARACK OBAMA"),
        **{k: "Biden" for k in stored_faces(gallery_url) if k not in ids},
    }
    shown = c.get("/identities/barack%20obama", headers=READ).json()
    assert shown["name"] == "BARACK OBAMA" and [f["face_id"] for f in shown["faces"]] == ids
    assert c.get("/identities/barak%20obama", headers=READ).status_code == 404
    recognised = c.post("/recognize", files=photo(faces_dir, "gallery/obama/1.jpg"), headers=READ).json()
    assert recognised["faces"][0]["identity"] == "BARACK OBAMA"
    document = c.get("/identities/Barack%20Obama/export", headers=headers("ops")).json()
    assert [(e["action"], e["identity"], e["detail"]) for e in document["audit"]] == [
        ("enroll", "barak obama", None),
        ("rename", "Barack Obama", "from 'barak obama'"),
        ("rename", "BARACK OBAMA", "from 'Barack Obama'"),
        ("export", "BARACK OBAMA", None),
    ]
    assert [e["key_label"] for e in document["audit"]] == ["cam", "ops", "ops", "ops"]
    assert [x["text"] for x in document["consents"]] == ["form 1"]


def test_merge_moves_every_face_and_keeps_both_histories(client, faces_dir, gallery_url):
    c = client
    first = enroll(c, faces_dir, "Obama", ["gallery/obama/1.jpg"], "form 1")
    second = enroll(c, faces_dir, "B. Obama", ["gallery/obama/2.jpg"], "form 2")
    assert c.post("/identities/Obama/merge", json={"into": "obama"}, headers=headers("ops")).status_code == 422
    assert c.post("/identities/Obama/merge", json={"into": "Nobody"}, headers=headers("ops")).status_code == 404
    r = c.post("/identities/b.%20obama/merge", json={"into": "OBAMA"}, headers=headers("ops"))
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "Obama", "faces": 2, "moved": second}
    assert stored_faces(gallery_url) == dict.fromkeys(first + second, "Obama")
    assert c.get("/identities/B.%20Obama", headers=READ).status_code == 404
    listed = c.get("/identities", headers=READ).json()["identities"]
    assert [(i["name"], i["faces"]) for i in listed] == [("Obama", 2)]
    document = c.get("/identities/obama/export", headers=headers("ops")).json()
    assert [x["text"] for x in document["consents"]] == ["form 1", "form 2"]
    assert [(e["action"], e["identity"]) for e in document["audit"]] == [
        ("enroll", "Obama"),
        ("enroll", "B. Obama"),
        ("merge", "Obama"),
        ("export", "Obama"),
    ]
    # rename onto an existing name with merge=true merges
    enroll(c, faces_dir, "Joe", ["gallery/biden/1.jpg"], "form J")
    enroll(c, faces_dir, "Biden", ["gallery/biden/2.jpg"], "form K")
    r = c.patch("/identities/Joe", json={"name": "biden", "merge": True}, headers=headers("ops"))
    assert r.status_code == 200 and r.json()["name"] == "Biden" and r.json()["faces"] == 2


def test_move_a_face_creates_the_target_and_removes_an_empty_source(client, faces_dir, gallery_url):
    c = client
    obama = enroll(c, faces_dir, "Obama", ["gallery/obama/1.jpg", "gallery/biden/1.jpg"], "form O")
    wrong = obama[1]  # Biden's photo enrolled under the wrong name
    url = f"/identities/Obama/faces/{wrong}/move"
    r = c.post(url, json={"to": "Biden"}, headers=headers("ops"))
    assert r.status_code == 422 and "FACE_REQUIRE_CONSENT" in r.json()["detail"]  # a new identity needs consent
    assert c.post(url, json={"to": "Obama"}, headers=headers("ops")).status_code == 422
    assert (
        c.post(
            f"/identities/Obama/faces/{'0' * 32}/move", json={"to": "X", "consent": "c"}, headers=headers("ops")
        ).status_code
        == 404
    )
    assert c.get("/identities/X", headers=READ).status_code == 404  # nothing created by a refused move
    r = c.post(url, json={"to": "Biden", "consent": "form B"}, headers=headers("ops"))
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "Biden", "faces": 1, "moved": [wrong]}
    assert stored_faces(gallery_url) == {obama[0]: "Obama", wrong: "Biden"}
    recognised = c.post("/recognize", files=photo(faces_dir, "gallery/biden/1.jpg"), headers=READ).json()
    assert recognised["faces"][0]["identity"] == "Biden"
    biden = c.get("/identities/biden/export", headers=headers("ops")).json()
    assert biden["consent"]["text"] == "form B"
    assert [(e["action"], e["detail"]) for e in biden["audit"]] == [("move_face", "from 'Obama'"), ("export", None)]
    # the last face moved away: the source goes
    r = c.post(f"/identities/Obama/faces/{obama[0]}/move", json={"to": "biden"}, headers=headers("ops"))
    assert r.status_code == 200 and r.json()["faces"] == 2
    assert c.get("/identities/Obama", headers=READ).status_code == 404
    assert set(stored_faces(gallery_url).values()) == {"Biden"}


def test_a_replica_follows_renames_merges_and_moves_whole(pg_url):
    """Two galleries on one PostgreSQL database, each following the other's change log: every
    merge in a burst is seen by the other within a second, and a reader there never finds an
    identity half merged (faces counted between the two identities stay constant)."""
    a = Gallery.open(pg_url, EMBEDDER, DIM)
    b = Gallery.open(pg_url, EMBEDDER, DIM)
    sync_a, sync_b = start_sync(a, 0.2), start_sync(b, 0.2)
    try:
        context = WriteContext(actor=Actor("ops"))
        with acting(context):
            for i in range(10):
                for records in (make_records(f"Left {i}", 20, seed=i), make_records(f"Right {i}", 5, seed=100 + i)):
                    a.store.add_faces(records)
                    a.apply_added(records)
        deadline = time.monotonic() + 5
        while b.stats()["faces"] < 250 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b.stats() == {"identities": 20, "faces": 250}
        halves: list[tuple] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                for i in range(10):
                    counts = dict(b.identities())
                    pair = counts.get(f"Left {i}", 0) + counts.get(f"Right {i}", 0)
                    if pair != 25:
                        halves.append((i, counts.get(f"Left {i}"), counts.get(f"Right {i}")))

        watcher = threading.Thread(target=watch)
        watcher.start()
        with acting(context):
            for i in range(10):
                curation.merge(a, f"Left {i}", f"Right {i}")
        merged_at = time.monotonic()
        while b.stats()["identities"] > 10 and time.monotonic() - merged_at < 1.0:
            time.sleep(0.01)
        stop.set()
        watcher.join()
        assert b.stats() == {"identities": 10, "faces": 250}, "not seen within a second"
        assert dict(b.identities()) == {f"Right {i}": 25 for i in range(10)}
        assert halves == []
        assert dict(a.identities()) == dict(b.identities())
        with acting(context):
            curation.rename(a, "Right 0", "Renamed")
            face = a.faces_of("Right 1")[0].face_id
            curation.move_face(a, "Right 1", face, "Renamed")
        deadline = time.monotonic() + 1.0
        while dict(b.identities()).get("Renamed") != 26 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert dict(b.identities())["Renamed"] == 26 and "Right 0" not in dict(b.identities())
        assert {r.face_id for r in b.faces_of("Renamed")} == {r.face_id for r in a.faces_of("Renamed")}
        merges = a.store.audit_events(AuditQuery(action="merge", limit=100))
        assert len(merges) == 10 and all(e.key_label == "ops" for e in merges)
    finally:
        for sync in (sync_a, sync_b):
            if sync is not None:
                sync.stop()
        a.close()
        b.close()


def test_not_the_same_person_is_remembered_and_forgotten_with_the_person(client, faces_dir, gallery_url):
    c = client
    enroll(c, faces_dir, "Obama", ["gallery/obama/1.jpg"], "form 1")
    enroll(c, faces_dir, "Barack", ["gallery/obama/2.jpg"], "form 2")
    enroll(c, faces_dir, "Biden", ["gallery/biden/1.jpg"], "form 3")
    pairs = c.get("/gallery/report", headers=READ).json()["pairs"]
    assert [{p["a"], p["b"]} for p in pairs] == [{"Obama", "Barack"}]
    url = "/gallery/report/dismissed"
    assert c.post(url, json={"a": "obama", "b": "barack"}, headers=READ).status_code == 401
    assert c.post(url, json={"a": "obama", "b": "OBAMA"}, headers=headers("ops")).status_code == 422
    assert c.post(url, json={"a": "obama", "b": "Nobody"}, headers=headers("ops")).status_code == 404
    assert c.post(url, json={"a": "barack", "b": "obama"}, headers=headers("ops")).status_code == 204
    assert c.post(url, json={"a": "Obama", "b": "Barack"}, headers=headers("ops")).status_code == 204  # again: once
    assert c.get("/gallery/report", headers=READ).json()["pairs"] == []
    # audited once, in both people's trails, with the acting key and the other identity named
    events = c.get("/audit", params={"action": "dismiss_pair"}, headers=headers("ops")).json()["events"]
    assert {(e["identity"], e["detail"], e["key_label"]) for e in events} == {
        ("Barack", "not the same person as 'Obama'", "ops"),
        ("Obama", "not the same person as 'Barack'", "ops"),
    }
    for name in ("Obama", "Barack"):
        exported = c.get(f"/identities/{name}/export", headers=headers("ops")).json()["audit"]
        assert [e["action"] for e in exported].count("dismiss_pair") == 1
    table = ("dismissed_pairs", "gallery_dismissed_pairs")[gallery_url.startswith("postgresql")]
    assert len(stored_rows(gallery_url, f"SELECT uid_a, uid_b FROM {table}")) == 1
    # a rename keeps the judgement (same person, same uid); erasing either forgets it
    assert c.patch("/identities/Barack", json={"name": "Barack O"}, headers=headers("ops")).status_code == 200
    assert c.get("/gallery/report", headers=READ).json()["pairs"] == []
    assert c.delete("/identities/Barack%20O", headers=headers("default")).status_code == 204
    assert stored_rows(gallery_url, f"SELECT uid_a, uid_b FROM {table}") == []


def stored_rows(url: str, sql: str) -> list[tuple]:
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url) as db:
            return [tuple(r) for r in db.execute(sql).fetchall()]
    with sqlite3.connect(url) as db:
        return db.execute(sql).fetchall()
