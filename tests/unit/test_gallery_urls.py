"""One factory decides what a ``FACE_GALLERY`` value names; the API loads no database driver it
does not use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from inference_service.gallery import GalleryOpenError, open_store
from inference_service.gallery.factory import describe, local_folder, preflight
from inference_service.gallery.urls import redact

from support.records import DIM, EMBEDDER, make_records


def test_preflight_reads_a_sqlite_url_like_a_path_and_writes_nothing(tmp_path):
    path = tmp_path / "g.sqlite3"
    store = open_store(path, EMBEDDER, DIM)
    store.add_faces(make_records("Ada", 1, seed=3))
    store.close()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert preflight(f"sqlite:///{path}", must_exist=True) == EMBEDDER
    assert preflight(path, EMBEDDER) == EMBEDDER
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    with pytest.raises(GalleryOpenError, match="holds dlib-resnet"):
        preflight(f"sqlite:///{path}", "facenet-vggface2")


def test_preflight_refuses_a_missing_gallery_only_when_one_must_exist(tmp_path):
    absent = tmp_path / "absent.sqlite3"
    with pytest.raises(GalleryOpenError, match=f"gallery file not found: {absent}"):
        preflight(f"sqlite:///{absent}", must_exist=True)
    assert preflight(absent) is None  # the API creates a new gallery there
    assert not absent.exists()
    (tmp_path / "foreign.sqlite3").write_bytes(b"not a database at all")
    with pytest.raises(GalleryOpenError, match="not an SQLite database"):
        preflight(tmp_path / "foreign.sqlite3")


def test_urls_say_where_without_a_password(tmp_path):
    url = "postgresql://face:s3cret@db:5432/faces"
    assert describe(url) == redact(url) == "postgresql://face:***@db:5432/faces"
    assert local_folder(url) is None
    assert local_folder(f"sqlite:///{tmp_path}/g.sqlite3") == tmp_path
    assert preflight(url) is None  # identified when it opens (a connection is the check)


def test_the_api_loads_no_postgresql_driver_for_a_sqlite_gallery():
    code = "import sys, inference_service.api; print(sorted(m for m in sys.modules if m.startswith('psycopg')))"
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
