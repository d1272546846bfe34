"""Rename, merge and move on a gallery in memory: searches see every change whole, the report
finds a planted duplicate and a planted stranger (random unit vectors, no weights)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from inference_service.gallery import Gallery, MemoryStore, curation
from inference_service.gallery.errors import IdentityExistsError, IdentityNotFoundError
from inference_service.gallery.report import agreements, gallery_report

DIM = 32


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def near(rng: np.random.Generator, centre: np.ndarray, n: int, spread: float = 0.15) -> np.ndarray:
    v = centre + spread * rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def gallery() -> Gallery:
    rng = np.random.default_rng(0)
    g = Gallery(MemoryStore(), "synthetic", DIM)
    for name in ("Ada", "Bob", "Cy"):
        g.enroll(name, near(rng, unit(rng, 1)[0], 4))
    return g


def test_rename_merge_and_move_follow_in_memory(gallery):
    ada = [r.face_id for r in gallery.faces_of("Ada")]
    with pytest.raises(IdentityExistsError):
        curation.rename(gallery, "ada", "BOB")
    assert curation.rename(gallery, "ada", "ADA L") == "ADA L"
    assert gallery.faces_of("Ada") is None and [r.face_id for r in gallery.faces_of("ada l")] == ada
    assert curation.rename(gallery, "ada l", "Ada L") == "Ada L"  # case only
    assert dict(gallery.identities()) == {"Ada L": 4, "Bob": 4, "Cy": 4}
    target, moved = curation.merge(gallery, "bob", "cy")
    assert target == "Cy" and len(moved) == 4 and dict(gallery.identities()) == {"Ada L": 4, "Cy": 8}
    query = gallery.faces_of("Cy")[0].embedding
    assert gallery.search(query, 0.5)[0].identity == "Cy"
    assert curation.move_face(gallery, "Ada L", ada[0], "Dee") == "Dee"
    assert dict(gallery.identities()) == {"Ada L": 3, "Cy": 8, "Dee": 1}
    with pytest.raises(IdentityNotFoundError):
        curation.move_face(gallery, "Ada L", ada[0], "Cy")  # not Ada's any more
    for face in ada[1:]:
        curation.move_face(gallery, "ada l", face, "dee")
    assert dict(gallery.identities()) == {"Cy": 8, "Dee": 4}


def test_a_search_never_sees_a_merge_half_done(gallery):
    """Readers run without a lock: every view they get has all 12 faces, under one identity each."""
    seen: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(sum(count for _, count in gallery.identities()))

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(50):
        curation.merge(gallery, "Ada", "Bob")
        curation.move_face(gallery, "Bob", gallery.faces_of("Bob")[0].face_id, "Ada")
        for face in [r.face_id for r in gallery.faces_of("Bob")][:3]:
            curation.move_face(gallery, "Bob", face, "Ada")
    stop.set()
    reader.join()
    assert seen and set(seen) == {12}


def test_the_report_finds_a_duplicate_and_a_stranger():
    rng = np.random.default_rng(1)
    centres = unit(rng, 6)
    g = Gallery(MemoryStore(), "synthetic", DIM)
    for i in range(5):
        g.enroll(f"p{i}", near(rng, centres[i], 5))
    g.enroll("p0 again", near(rng, centres[0], 3))
    stranger = g.enroll("p1", near(rng, centres[5], 1))[0]
    report = gallery_report(g.store.load_table(DIM), threshold=0.8)
    assert [(a, b) for a, b, _ in report.pairs] == [("p0", "p0 again")]
    assert [(who, face) for who, face, _ in report.flagged] == [("p1", stranger.face_id)]
    assert np.isnan(agreements(unit(rng, 1))).all()


def test_a_snapshot_taken_before_a_merge_serves_the_merge(tmp_path):
    """A SQLite gallery started from a snapshot written before a rename, merge and move (the
    process stopped before rewriting it) shows what the file holds, not the snapshot's past."""
    from inference_service.gallery import SQLiteStore

    rng = np.random.default_rng(3)
    path = tmp_path / "g.sqlite3"
    first = Gallery(SQLiteStore(path, "synthetic", DIM), "synthetic", DIM, snapshot_min_faces=1)
    for name in ("Ada", "Bob", "Cy", "Dee"):
        first.enroll(name, unit(rng, 3))
    moving = first.faces_of("Dee")[0].face_id
    first.close()
    assert (tmp_path / "g.sqlite3.snapshot").exists()
    store = SQLiteStore(path, "synthetic", DIM)  # written behind the snapshot's back
    store.merge_identity("Bob", "Ada")
    store.rename_identity("Cy", "Cyrus")
    store.move_face("Dee", moving, "Ada")
    store.close()
    again = Gallery(SQLiteStore(path, "synthetic", DIM), "synthetic", DIM, snapshot_min_faces=1)
    try:
        assert dict(again.identities()) == {"Ada": 7, "Cyrus": 3, "Dee": 2}
        assert moving in {r.face_id for r in again.faces_of("Ada")}
    finally:
        again.close()


@pytest.mark.parametrize("with_dismissed", [False, True])
def test_version_4_galleries_of_either_development_shape_upgrade(tmp_path, with_dismissed):
    """Version 4 was written without and (by a development build) with the dismissed pairs;
    both open and become version 5, keeping their people."""
    import sqlite3

    from inference_service.gallery import open_store, sqlite_file

    path = tmp_path / "g.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    for script in (sqlite_file.SCHEMA_V1, sqlite_file._V1_TO_V2, sqlite_file._V2_INDEX, sqlite_file._V2_TO_V3):
        sqlite_file._run(db, script)
    sqlite_file._run(db, sqlite_file._V3_TO_V4)
    if with_dismissed:
        sqlite_file._run(db, sqlite_file._V4_TO_V5)
    db.execute("INSERT INTO meta VALUES ('schema_version', '4')")
    db.execute("INSERT INTO identities(name, name_key, created_at, uid) VALUES ('Ada', 'ada', '2026-01-01', 'u1')")
    db.execute(f"PRAGMA application_id = {sqlite_file.APPLICATION_ID}")
    db.execute("COMMIT")
    db.close()
    store = open_store(path, "synthetic", DIM)
    assert store.identity_terms("ada").name == "Ada"
    store.close()
    assert sqlite_file.identify(path).schema_version == sqlite_file.SCHEMA_VERSION


def test_an_upgraded_gallery_gives_a_reused_name_only_its_own_history(tmp_path):
    """A version-3 file holds the audit rows of an erased "Chris Lee" and of the "chris lee"
    enrolled since; after the upgrade the export of the second lists only their own events, and
    the one consent record version 3 kept is the first of their history."""
    import sqlite3

    from inference_service.gallery import open_store, sqlite_file
    from inference_service.gallery.audit import Actor, WriteContext

    path = tmp_path / "g.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    for script in (sqlite_file.SCHEMA_V1, sqlite_file._V1_TO_V2, sqlite_file._V2_INDEX, sqlite_file._V2_TO_V3):
        sqlite_file._run(db, script)
    db.execute("INSERT INTO meta VALUES ('schema_version', '3')")
    db.execute(
        "INSERT INTO identities(name, name_key, created_at, consent, consent_at, consent_by) "
        "VALUES ('chris lee', 'chris lee', '2026-02-01T00:00:00+00:00', 'form B', '2026-02-01T00:00:00+00:00', 'ops')"
    )
    for seq, action, name in (
        (1, "enroll", "Chris Lee"),
        (2, "delete_identity", "Chris Lee"),
        (3, "enroll", "chris lee"),
    ):
        db.execute(
            "INSERT INTO audit(seq, at, action, name, name_key, face_ids, key_label) VALUES (?, ?, ?, ?, ?, '', 'k')",
            (seq, f"2026-0{seq}-01T00:00:00+00:00", action, name, "chris lee"),
        )
    db.execute(f"PRAGMA application_id = {sqlite_file.APPLICATION_ID}")
    db.execute("COMMIT")
    db.close()
    store = open_store(path, "synthetic", DIM)
    try:
        document = store.export_identity("Chris Lee", WriteContext(actor=Actor("ops")))
    finally:
        store.close()
    assert document is not None
    assert [(e["action"], e["identity"]) for e in document["audit"]] == [
        ("enroll", "chris lee"),
        ("export", "chris lee"),
    ]
    assert [c["text"] for c in document["consents"]] == ["form B"]
