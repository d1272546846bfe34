"""The SQLite gallery file: identified before it is written, names compared case-insensitively,
old galleries upgraded, and a full disk refused with nothing half written.

Embeddings come from the real engine on the labelled faces where recognition is asserted; tests
about the file alone use seeded random unit vectors (what the file holds is the same bytes).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import unicodedata
import uuid
from pathlib import Path

import numpy as np
import pytest

from inference_service.engine.images import load_image
from inference_service.gallery import (
    Gallery,
    GalleryFullError,
    GalleryMismatchError,
    GalleryOpenError,
    InvalidNameError,
    MemoryStore,
    SQLiteStore,
    stored_embedder,
)
from inference_service.gallery.sqlite_file import APPLICATION_ID, SCHEMA_VERSION

from support.faces import OPTIONAL_SKIP

# The schema of the first release, copied verbatim: galleries written by it must keep working.
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS identities (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS faces (
    face_id TEXT PRIMARY KEY,
    identity TEXT NOT NULL REFERENCES identities(name) ON DELETE CASCADE,
    embedding BLOB NOT NULL,
    dim INTEGER NOT NULL,
    embedder TEXT NOT NULL,
    created_at TEXT NOT NULL,
    box_x1 REAL, box_y1 REAL, box_x2 REAL, box_y2 REAL
);
CREATE INDEX IF NOT EXISTS faces_by_identity ON faces(identity, created_at);
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unit_vectors(n: int, dim: int = 128, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def write_old_gallery(
    path: Path, faces: list[tuple[str, np.ndarray]], embedder: str = "dlib-resnet", journal: str = "WAL"
) -> None:
    """A gallery file exactly as the first release wrote it (application_id 0, no name_key)."""
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute(f"PRAGMA journal_mode={journal}")
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('embedder', ?)", (embedder,))
    db.execute("INSERT INTO meta VALUES ('dim', ?)", (str(len(faces[0][1])),))
    for i, (name, vector) in enumerate(faces):
        stamp = f"2026-01-01T00:00:{i:02d}.000000+00:00"
        db.execute("INSERT OR IGNORE INTO identities VALUES (?, ?)", (name, stamp))
        db.execute(
            "INSERT INTO faces VALUES (?, ?, ?, ?, ?, ?, 1, 2, 3, 4)",
            (uuid.uuid4().hex, name, np.asarray(vector, "<f4").tobytes(), len(vector), embedder, stamp),
        )
    db.close()


def foreign_database(path: Path) -> None:
    """Another program's SQLite file, in the default rollback-journal mode."""
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    db.executemany("INSERT INTO notes(body) VALUES (?)", [(f"note {i}",) for i in range(50)])
    db.commit()
    db.close()


# --- foreign and other embedders' files --------------------------------------------------------
def test_foreign_sqlite_file_is_refused_untouched(tmp_path):
    path = tmp_path / "other-program.db"
    foreign_database(path)
    before, listing = sha256(path), sorted(os.listdir(tmp_path))
    with pytest.raises(GalleryOpenError, match="another program"):
        SQLiteStore(path, "dlib-resnet", 128)
    with pytest.raises(GalleryOpenError, match="another program"):
        stored_embedder(path)
    assert sha256(path) == before
    assert sorted(os.listdir(tmp_path)) == listing  # no -wal, -shm or journal left beside it
    assert path.read_bytes()[18:20] == b"\x01\x01"  # still a rollback-journal database, not WAL


@pytest.mark.parametrize("journal", ["DELETE", "WAL"])
def test_gallery_of_another_embedder_is_refused_before_any_write(tmp_path, journal):
    path = tmp_path / "facenet.sqlite3"
    write_old_gallery(path, [("Ada", unit_vectors(1, 512)[0])], embedder="facenet-vggface2", journal=journal)
    before = sha256(path)
    with pytest.raises(GalleryMismatchError, match="FACE_EMBEDDER=facenet-vggface2"):
        Gallery.open(path, "dlib-resnet", 128)
    assert sha256(path) == before


def test_stored_embedder_writes_nothing(tmp_path):
    path = tmp_path / "old.sqlite3"
    write_old_gallery(path, [("Ada", unit_vectors(1)[0])], journal="DELETE")
    before, listing = sha256(path), sorted(os.listdir(tmp_path))
    assert stored_embedder(path) == "dlib-resnet"
    assert stored_embedder(tmp_path / "absent.sqlite3") is None
    assert sha256(path) == before and sorted(os.listdir(tmp_path)) == listing


def test_gallery_of_a_killed_process_keeps_its_committed_faces(tmp_path):
    """After kill -9 the last commits live only in the -wal file: identification must read it."""
    live, crashed = tmp_path / "live", tmp_path / "crashed"
    live.mkdir()
    crashed.mkdir()
    db = sqlite3.connect(str(live / "g.sqlite3"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(OLD_SCHEMA)  # the whole first-release gallery is still in its -wal file
    db.execute("INSERT INTO meta VALUES ('embedder', 'dlib-resnet'), ('dim', '128')")
    db.execute("INSERT INTO identities VALUES ('Ada', '2026-01-01')")
    db.execute(
        "INSERT INTO faces VALUES ('f1', 'Ada', ?, 128, 'dlib-resnet', '2026-01-01', 1, 2, 3, 4)",
        (unit_vectors(1)[0].astype("<f4").tobytes(),),
    )
    for f in live.iterdir():  # the files as a killed process leaves them (nothing checkpointed)
        (crashed / f.name).write_bytes(f.read_bytes())
    db.close()
    assert (crashed / "g.sqlite3-wal").stat().st_size > 0
    assert stored_embedder(crashed / "g.sqlite3") == "dlib-resnet"
    g = Gallery.open(crashed / "g.sqlite3", "dlib-resnet", 128)
    assert g.identities() == [("Ada", 1)]
    g.close()


def test_gallery_of_a_newer_version_is_refused_untouched(tmp_path):
    path = tmp_path / "g.sqlite3"
    Gallery.open(path, "dlib-resnet", 128).close()
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.execute("PRAGMA journal_mode=DELETE")
    db.close()
    before = sha256(path)
    with pytest.raises(GalleryOpenError, match="newer"):
        Gallery.open(path, "dlib-resnet", 128)
    assert sha256(path) == before


def test_new_gallery_carries_the_marker_and_is_created_only_where_nothing_exists(tmp_path):
    path = tmp_path / "sub" / "gallery.sqlite3"
    Gallery.open(path, "dlib-resnet", 128).close()
    db = sqlite3.connect(str(path))
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID == int.from_bytes(b"FACE", "big")
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    db.close()
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".new")] == []  # built aside, linked
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    with pytest.raises(GalleryOpenError, match="empty file"):
        Gallery.open(empty, "dlib-resnet", 128)
    assert empty.stat().st_size == 0


# --- names -------------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "memory"])
def gallery(request, tmp_path):
    store = SQLiteStore(tmp_path / "g.sqlite3", "dlib-resnet", 128) if request.param == "sqlite" else MemoryStore()
    g = Gallery(store, "dlib-resnet", 128)
    yield g
    g.close()


def test_one_person_whatever_the_case_first_spelling_kept(gallery):
    vectors = unit_vectors(3)
    gallery.enroll("Obama", vectors[:1])
    added = gallery.enroll("obama", vectors[1:2])
    gallery.enroll("OBAMA", vectors[2:])
    assert added[0].identity == "Obama"
    assert gallery.identities() == [("Obama", 3)]
    assert [r.identity for r in gallery.faces_of("oBaMa")] == ["Obama"] * 3
    assert gallery.search(vectors[2:], threshold=0.99)[0].identity == "Obama"
    assert gallery.delete_face("OBAMA", added[0].face_id)
    assert gallery.identities() == [("Obama", 2)]
    assert gallery.delete_identity("obama")
    assert gallery.identities() == [] and gallery.faces_of("Obama") is None
    gallery.enroll("oBAMA", vectors[:1])  # gone for good: a new enrollment starts a new spelling
    assert gallery.identities() == [("oBAMA", 1)]


def test_case_insensitive_identities_survive_a_restart(tmp_path):
    path = tmp_path / "g.sqlite3"
    g = Gallery.open(path, "dlib-resnet", 128)
    g.enroll("Zoë", unit_vectors(1, seed=1))
    g.close()
    g = Gallery.open(path, "dlib-resnet", 128)
    nfd = unicodedata.normalize("NFD", "ZOË")
    assert nfd != "ZOË"
    g.enroll(nfd, unit_vectors(1, seed=2))
    assert g.identities() == [("Zoë", 2)]
    g.close()
    store = SQLiteStore(path, "dlib-resnet", 128)
    assert {r.identity for r in store.load_all()} == {"Zoë"}
    assert store.delete_identity("zoë") == 2 and store.load_all() == []
    store.close()


def test_nfd_name_is_the_nfc_name(gallery):
    nfd = unicodedata.normalize("NFD", "Zoë")
    assert len(nfd) == 4
    gallery.enroll(nfd, unit_vectors(1))
    assert gallery.identities() == [("Zoë", 1)]
    assert gallery.faces_of("Zoë") is not None


@pytest.mark.parametrize(
    "name", ["Nguyễn Văn An", "Σωκράτης", "Пётр Чайковский", "王小明", "O'Brien-Smith Jr.", "Ada_2"]
)
def test_names_in_every_script_are_accepted(gallery, name):
    gallery.enroll(name, unit_vectors(1))
    assert gallery.identities() == [(unicodedata.normalize("NFC", name), 1)]
    assert gallery.faces_of(name.upper()) is not None


@pytest.mark.parametrize("name", ["A×B", "A÷B", "-", "'", "...", " Ada", "", "a" * 65])
def test_non_names_are_refused(gallery, name):
    with pytest.raises(InvalidNameError):
        gallery.enroll(name, unit_vectors(1))
    assert gallery.identities() == []


# --- migration of a first-release gallery ------------------------------------------------------
def embed_file(engine, path: Path) -> np.ndarray:
    image = load_image(path.read_bytes())
    faces = engine.detect(image)
    largest = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
    return engine.embed_faces(image, [largest])[0]


def test_old_gallery_is_upgraded_and_keeps_its_faces(tmp_path, engine, faces_dir, caplog):
    gallery_dir = faces_dir / "gallery"
    obama = [embed_file(engine, p) for p in sorted((gallery_dir / "obama").iterdir())]
    biden = embed_file(engine, sorted((gallery_dir / "biden").iterdir())[0])
    path = tmp_path / "old.sqlite3"
    # The first release compared names exactly, so one person could be split in two spellings,
    # and its rule let in names the current one refuses ("A×B").
    write_old_gallery(path, [("Obama", obama[0]), ("Biden", biden), ("obama", obama[1]), ("A×B", biden)])
    with caplog.at_level("WARNING"):
        g = Gallery.open(path, engine.embedder.name, engine.embedder.dim)
    assert "'obama' merged into 'Obama'" in caplog.text
    assert g.identities() == [("A×B", 1), ("Biden", 1), ("Obama", 2)]
    probe = embed_file(engine, sorted((gallery_dir / "obama").iterdir())[1])
    assert g.search(probe[None], engine.threshold)[0].identity == "Obama"
    g.enroll("OBAMA", probe[None])
    assert g.identities()[-1] == ("Obama", 3)
    assert g.delete_identity("a×b")  # a legacy name stays reachable
    g.close()
    db = sqlite3.connect(str(path))
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert db.execute("SELECT name, name_key FROM identities ORDER BY name").fetchall() == [
        ("Biden", "biden"),
        ("Obama", "obama"),
    ]
    db.close()
    store = SQLiteStore(path)
    assert [r.identity for r in store.load_all()] == ["Biden", "Obama", "Obama", "Obama"]
    store.close()


# --- full disk ---------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs (root can mount one); skipped with the reason where mounting is refused."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(
            f"{OPTIONAL_SKIP} cannot mount a small tmpfs to fill ({done.stderr.strip() or done.returncode}); needs root"
        )
    yield mount
    if subprocess.run(["umount", str(mount)]).returncode != 0:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


def fill(folder: Path) -> Path:
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == 28  # ENOSPC
    finally:
        os.close(fd)
    return filler


def test_full_disk_refuses_the_write_whole_and_serves_on(small_disk):
    path = small_disk / "gallery.sqlite3"
    g = Gallery.open(path, "dlib-resnet", 128)
    vectors = unit_vectors(60, seed=3)
    g.enroll("Ada", vectors[:3])
    filler = fill(small_disk)
    for count in (1, 50):
        with pytest.raises(GalleryFullError, match="full"):
            g.enroll("Bob", vectors[3 : 3 + count])
        assert g.identities() == [("Ada", 3)]
        assert g.faces_of("Bob") is None
    assert g.search(vectors[:1], threshold=0.9)[0].identity == "Ada"  # still serves
    filler.unlink()
    g.enroll("bob", vectors[3:5])
    assert g.identities() == [("Ada", 3), ("bob", 2)]
    g.close()
    store = SQLiteStore(path, "dlib-resnet", 128)
    assert [r.identity for r in store.load_all()] == ["Ada"] * 3 + ["bob"] * 2
    store.close()
