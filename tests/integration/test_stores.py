"""One suite for every gallery store: memory, SQLite and PostgreSQL (a real throwaway server).

What the gallery relies on is the same whichever store is behind it: what was added comes back
(ids, names, vectors, boxes, times), deletes report what they did, the last face takes its
identity with it, and a persistent store serves the same faces after a reopen.
"""

from __future__ import annotations

import base64
import sqlite3
from dataclasses import replace

import numpy as np
import pytest

from inference_service.gallery import GalleryMismatchError, MemoryStore, open_store
from inference_service.gallery.audit import Actor, WriteContext

from support.records import DIM, EMBEDDER, make_records


def _opener(kind: str, request, tmp_path):
    """open() opens the same store again (a restart for the persistent ones)."""
    if kind == "memory":
        store = MemoryStore()
        yield lambda: store
        return
    url = str(tmp_path / "gallery.sqlite3") if kind == "sqlite" else request.getfixturevalue("pg_url")
    opened = []

    def reopen():
        opened.append(open_store(url, EMBEDDER, DIM))
        return opened[-1]

    yield reopen
    for store in opened:
        store.close()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def backend(request, tmp_path):
    yield from _opener(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def persistent(request, tmp_path):
    yield from _opener(request.param, request, tmp_path)


def by_id(records):
    return {r.face_id: r for r in records}


def test_added_faces_come_back_whole_and_grouped(backend):
    open_ = backend
    store = open_()
    ada, bob = make_records("Ada", 3, 1), make_records("Bob", 2, 2, box=False)
    store.add_faces(ada[:2])
    store.add_faces(bob)
    store.add_faces(ada[2:])
    loaded = store.load_all()
    assert [r.identity for r in loaded] == ["Ada"] * 3 + ["Bob"] * 2
    assert [r.face_id for r in loaded[:3]] == [r.face_id for r in ada]  # order of adding kept
    got = by_id(loaded)
    for rec in ada + bob:
        back = got[rec.face_id]
        np.testing.assert_array_equal(np.asarray(back.embedding, np.float32), rec.embedding)
        assert back.box == rec.box
        assert back.created_at == rec.created_at
        assert back.embedder == EMBEDDER
    assert store.embedder() == EMBEDDER


def test_table_holds_what_records_hold(backend):
    open_ = backend
    store = open_()
    records = make_records("Ada", 3, 1) + make_records("Bob", 2, 2, box=False)
    store.add_faces(records)
    table = store.load_table(DIM)
    assert table.embeddings.shape == (5, DIM) and table.embeddings.dtype == np.float32
    want = by_id(records)
    for i, raw in enumerate(table.face_ids):
        rec = want[raw.decode()]
        assert table.names[table.identity[i]] == rec.identity
        np.testing.assert_array_equal(table.embeddings[i], rec.embedding)
        if rec.box is None:
            assert np.isnan(table.boxes[i]).all()
        else:
            np.testing.assert_allclose(table.boxes[i], rec.box)
        assert table.created_at[i] == np.datetime64(rec.created_at.replace("+00:00", ""), "us")


def test_deletes_report_what_they_did(backend):
    open_ = backend
    store = open_()
    ada, bob = make_records("Ada", 2, 1), make_records("Bob", 3, 2)
    store.add_faces(ada + bob)
    assert store.delete_face("Ada", ada[0].face_id) is True
    assert store.delete_face("Ada", ada[0].face_id) is False  # already gone
    assert store.delete_face("Bob", ada[1].face_id) is False  # not Bob's face
    assert store.delete_face("Ada", ada[1].face_id) is True  # the last one: Ada goes too
    assert {r.identity for r in store.load_all()} == {"Bob"}
    assert store.delete_identity("Ada") == -1
    assert store.delete_identity("Bob") == 3
    assert store.delete_identity("Bob") == -1
    assert store.load_all() == []
    assert len(store.load_table(DIM).face_ids) == 0


def test_persistent_store_serves_the_same_faces_after_reopen(persistent):
    open_ = persistent
    first = open_()
    records = make_records("Zoë", 2, 3)
    first.add_faces(records)
    first.close()
    again = open_()
    assert [r.face_id for r in again.load_all()] == [r.face_id for r in records]
    assert again.load_all()[0].identity == "Zoë"


def test_store_of_another_embedder_is_refused(persistent):
    store = persistent()
    store.add_faces(make_records("Ada", 1, 1))
    store.close()
    url = getattr(store, "url", None) or store.path
    with pytest.raises(
        GalleryMismatchError, match=r"holds dlib-resnet embeddings \(128-d\) but the service uses facenet-vggface2"
    ):
        open_store(url, "facenet-vggface2", 512)


def test_gallery_setting_names_a_store_by_path_or_url(tmp_path, monkeypatch):
    from inference_service.config import Settings
    from inference_service.gallery import GalleryOpenError
    from inference_service.gallery.factory import describe, is_postgres, sqlite_path

    monkeypatch.chdir(tmp_path)
    assert sqlite_path("data/g.sqlite3") == sqlite_path("sqlite:///data/g.sqlite3")
    assert str(sqlite_path(f"sqlite:///{tmp_path}/g.sqlite3")) == f"{tmp_path}/g.sqlite3"
    store = open_store("sqlite:///data/g.sqlite3", EMBEDDER, DIM)
    store.add_faces(make_records("Ada", 1, 1))
    store.close()
    assert (tmp_path / "data/g.sqlite3").is_file()
    assert Settings(gallery=tmp_path / "x.sqlite3").gallery == str(tmp_path / "x.sqlite3")
    assert is_postgres("postgresql://u:secret@db:5432/faces") and is_postgres("postgres://db/faces")
    assert "secret" not in describe("postgresql://u:secret@db:5432/faces")
    with pytest.raises(GalleryOpenError, match="not a gallery store"):
        open_store("mysql://db/faces", EMBEDDER, DIM)


def test_service_with_an_unreachable_database_stops_with_one_line(tmp_path):
    import subprocess
    import sys

    from support.live_servers import REPO, clean_env, free_port

    url = f"postgresql://face:secret@127.0.0.1:{free_port()}/faces"
    result = subprocess.run(
        [sys.executable, "-m", "inference_service"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(FACE_GALLERY=url, FACE_EMBEDDER="dlib-resnet", FACE_PORT=str(free_port())),
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "cannot connect to the gallery database" in errors[0]
    assert "secret" not in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(params=["sqlite", "postgresql"])
def stored_thumbnails(request, tmp_path):
    """(store, count of thumbnail rows read from the database itself, not through the store)."""
    url = str(tmp_path / "gallery.sqlite3") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    store = open_store(url, EMBEDDER, DIM)

    def rows() -> set[str]:
        if request.param == "sqlite":
            db = sqlite3.connect(url)
            try:
                return {r[0] for r in db.execute("SELECT face_id FROM face_thumbnails")}
            finally:
                db.close()
        import psycopg

        with psycopg.connect(url) as db:
            return {r[0].hex for r in db.execute("SELECT face_id FROM gallery_face_thumbnails")}

    yield store, rows
    store.close()


def test_thumbnails_are_kept_with_their_faces_moved_with_them_and_erased_with_them(stored_thumbnails):
    store, rows = stored_thumbnails
    ada = [replace(r, thumbnail=b"\xff\xd8jpeg-" + r.face_id.encode()) for r in make_records("Ada", 3, 1)]
    bob = make_records("Bob", 1, 2)  # enrolled without one, as before thumbnails were kept
    store.add_faces(ada)
    store.add_faces(bob)
    assert rows() == {r.face_id for r in ada}
    assert store.thumbnail("ada", ada[0].face_id) == ada[0].thumbnail  # any case of the name
    assert store.thumbnail("Bob", bob[0].face_id) is None
    assert store.thumbnail("Bob", ada[0].face_id) is None  # another person's face is not found

    store.move_face("Ada", ada[1].face_id, "Cy")
    assert store.thumbnail("Cy", ada[1].face_id) == ada[1].thumbnail
    assert store.thumbnail("Ada", ada[1].face_id) is None

    assert store.delete_face("Ada", ada[0].face_id)
    assert rows() == {ada[1].face_id, ada[2].face_id}
    assert store.delete_identity("Ada") == 1
    assert rows() == {ada[1].face_id}
    assert store.delete_identity("Cy") == 1
    assert rows() == set()


def test_export_includes_each_faces_thumbnail(stored_thumbnails):
    store, _ = stored_thumbnails
    ada = make_records("Ada", 2, 1)
    store.add_faces([replace(ada[0], thumbnail=b"\xff\xd8jpeg"), ada[1]])
    exported = {f["face_id"]: f for f in store.export_identity("ada", WriteContext(actor=Actor("test")))["faces"]}
    assert exported[ada[0].face_id]["thumbnail_jpeg_base64"] == base64.b64encode(b"\xff\xd8jpeg").decode()
    assert exported[ada[1].face_id]["thumbnail_jpeg_base64"] is None
