"""``python -m inference_service`` refusing to start: one line, exit status 2, nothing written.

Each case runs the real command as a subprocess. A bad gallery is found before any model loads,
so stderr holds exactly the one ``cannot start:`` line; the file's bytes are compared by hash.
The tests run as root, whom file modes do not stop: "read-only" and "folder not writable" are
made with ``chattr +i`` (immutable even for root), skipped with the reason where that fails.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from inference_service.gallery import Gallery, SQLiteStore

from support.faces import OPTIONAL_SKIP
from support.live_servers import REPO, clean_env, free_port


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_service(**env: str) -> subprocess.CompletedProcess:
    settings = dict(FACE_EMBEDDER="dlib-resnet", FACE_THREADS="1", FACE_PORT=str(free_port()))
    settings.update(env)
    return subprocess.run(
        [sys.executable, "-m", "inference_service"],
        cwd=REPO,
        env=clean_env(**settings),
        capture_output=True,
        text=True,
        timeout=180,
    )


def refused(done: subprocess.CompletedProcess, *words: str, only_line: bool = True) -> str:
    """The one error line; asserts exit 2, no traceback, and (``only_line``) nothing else on stderr."""
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "Traceback" not in out, out
    errors = [line for line in done.stderr.splitlines() if "cannot start:" in line]
    assert len(errors) == 1, out
    if only_line:
        assert done.stderr.strip().splitlines() == errors and done.stdout == "", out
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def real_gallery(path: Path, faces: int = 60) -> Path:
    """A gallery with enough faces to span many pages, closed (WAL folded into the file)."""
    g = Gallery.open(path, "dlib-resnet", 128)
    v = np.random.default_rng(0).normal(size=(faces, 128))
    for i in range(0, faces, 10):
        g.enroll(f"Person {i}", v[i : i + 10])
    g.close()
    return path


@contextmanager
def immutable(path: Path):
    """``chattr +i``: not writable even by root (nor can entries be added to a folder)."""
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"{OPTIONAL_SKIP} chattr +i is not available here ({done.stderr.strip()}): root ignores file modes")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def random_bytes(tmp: Path) -> Path:
    path = tmp / "gallery.sqlite3"
    path.write_bytes(np.random.default_rng(1).bytes(16384))
    return path


def half_truncated(tmp: Path) -> Path:
    path = real_gallery(tmp / "gallery.sqlite3")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def corrupt_page(tmp: Path) -> Path:
    path = real_gallery(tmp / "gallery.sqlite3")
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) >= 6 * page
    middle = (len(data) // page // 2) * page
    data[middle : middle + page] = np.random.default_rng(2).bytes(page)
    path.write_bytes(bytes(data))
    return path


def foreign(tmp: Path) -> Path:
    path = tmp / "notes.db"
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    db.execute("INSERT INTO notes(body) VALUES ('keep me')")
    db.commit()
    db.close()
    return path


@pytest.mark.parametrize(
    "make, words",
    [
        (random_bytes, ["not a gallery", "FACE_GALLERY"]),
        (half_truncated, ["damaged or truncated", "backup"]),
        (corrupt_page, ["damaged or truncated", "backup"]),
        (foreign, ["another program", "left untouched"]),
    ],
    ids=["random-bytes", "half-truncated", "corrupt-page", "foreign-sqlite"],
)
def test_unusable_gallery_file_stops_the_start_untouched(tmp_path, make, words):
    path = make(tmp_path)
    before, listing = sha256(path), sorted(os.listdir(tmp_path))
    line = refused(run_service(FACE_GALLERY=str(path)), str(path), *words)
    assert line.count(str(path)) >= 1
    assert sha256(path) == before
    assert sorted(os.listdir(tmp_path)) == listing  # no -wal, -shm or new file beside it


def test_read_only_gallery(tmp_path):
    path = real_gallery(tmp_path / "gallery.sqlite3")
    before = sha256(path)
    with immutable(path):
        refused(run_service(FACE_GALLERY=str(path)), str(path), "read-only", "writable")
    assert sha256(path) == before


def test_gallery_in_a_folder_the_service_cannot_write(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    path = real_gallery(folder / "gallery.sqlite3")
    before = sha256(path)
    with immutable(folder):
        refused(run_service(FACE_GALLERY=str(path)), str(path), "not writable", "-wal")
        refused(run_service(FACE_GALLERY=str(folder / "new.sqlite3")), "not writable")
    assert sha256(path) == before and sorted(os.listdir(folder)) == ["gallery.sqlite3"]


def test_gallery_path_is_a_folder(tmp_path):
    folder = tmp_path / "gallery.sqlite3"
    folder.mkdir()
    refused(run_service(FACE_GALLERY=str(folder)), str(folder), "is a folder")
    assert list(folder.iterdir()) == []


def test_gallery_whose_parent_is_a_file(tmp_path):
    parent = tmp_path / "data"
    parent.write_text("not a folder")
    before = sha256(parent)
    refused(run_service(FACE_GALLERY=str(parent / "sub" / "gallery.sqlite3")), str(parent), "is a file, not a folder")
    assert sha256(parent) == before


def test_gallery_of_another_embedder_is_untouched(tmp_path):
    path = tmp_path / "facenet.sqlite3"
    SQLiteStore(path, "facenet-vggface2", 512).close()
    before = sha256(path)
    refused(run_service(FACE_GALLERY=str(path)), "holds facenet-vggface2 embeddings", "FACE_EMBEDDER=facenet-vggface2")
    assert sha256(path) == before


# --- settings and weights ----------------------------------------------------------------------
def test_weights_dir_that_does_not_exist(tmp_path):
    missing = tmp_path / "nonexistent"
    refused(
        run_service(FACE_WEIGHTS_DIR=str(missing), FACE_GALLERY=str(tmp_path / "g.sqlite3")),
        f"FACE_WEIGHTS_DIR={missing}",
        "no such file or folder",
    )
    assert not (tmp_path / "g.sqlite3").exists()


def unwritable_cache(tmp_path: Path) -> Path:
    """A TORCH_HOME nobody can create (its parent is a file): no download is ever attempted."""
    blocker = tmp_path / "home-is-a-file"
    blocker.write_text("")
    return blocker / "torch"


def test_facenet_with_an_unwritable_torch_cache_names_the_settings(tmp_path):
    line = refused(
        run_service(
            FACE_EMBEDDER="facenet-vggface2",
            TORCH_HOME=str(unwritable_cache(tmp_path)),
            FACE_GALLERY=str(tmp_path / "g.sqlite3"),
        ),
        "TORCH_HOME",
        "FACE_WEIGHTS_DIR",
        only_line=False,
    )
    assert "FACE_EMBEDDER=dlib-resnet" in line  # no gallery yet: the other embedder is a way out


def test_facenet_gallery_with_auto_gives_advice_that_works(tmp_path):
    path = tmp_path / "facenet.sqlite3"
    SQLiteStore(path, "facenet-vggface2", 512).close()
    before = sha256(path)
    line = refused(
        run_service(FACE_EMBEDDER="auto", TORCH_HOME=str(unwritable_cache(tmp_path)), FACE_GALLERY=str(path)),
        "FACE_WEIGHTS_DIR",
        "FACE_GALLERY",
        only_line=False,
    )
    # dlib-resnet would be refused for this gallery: advising it sends the operator in a circle.
    assert "FACE_EMBEDDER=dlib-resnet" not in line
    assert sha256(path) == before


@pytest.mark.parametrize("how", ["home-is-a-file", "immutable-home"])
def test_auto_with_an_unwritable_home_falls_back_with_one_line(tmp_path, monkeypatch, caplog, how):
    import torch

    from inference_service.engine.embedders import facenet, resolve_auto

    if how == "home-is-a-file":
        home = tmp_path / "home"
        home.write_text("")
        context = None
    else:
        home = tmp_path / "home"
        home.mkdir()
        context = immutable(home)
        context.__enter__()
    try:
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.delenv("TORCH_HOME", raising=False)
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

        def no_network(url, dst, *args, **kwargs):
            raise AssertionError("the cache is unwritable: nothing should be downloaded")

        monkeypatch.setattr(facenet.torch.hub, "download_url_to_file", no_network)
        with caplog.at_level("INFO"):
            embedder = resolve_auto(torch.device("cpu"), gallery_embedder=None)
    finally:
        if context is not None:
            context.__exit__(None, None, None)
    assert embedder.name == "dlib-resnet"
    # One plain line (not a warning: falling back is the expected path) naming the setting to fix.
    chosen = [r.getMessage() for r in caplog.records if "embedder (FACE_EMBEDDER=auto): dlib-resnet" in r.getMessage()]
    assert len(chosen) == 1 and "TORCH_HOME" in chosen[0], caplog.text
    assert not [r for r in caplog.records if r.levelno >= 30], caplog.text
    assert "no_network" not in caplog.text and "AssertionError" not in caplog.text
