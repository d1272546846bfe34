"""Start-up from a snapshot: caught up with the store, rebuilt when it cannot be trusted, written
atomically and rewritten soon after an erasure.

Real SQLite galleries in a temporary folder with structured synthetic faces; the snapshot is
always compared with what the store itself holds (a gallery loaded without one).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from inference_service.gallery import Gallery, SQLiteStore, warm_start
from inference_service.gallery import snapshot as snapshot_file
from inference_service.gallery.store import FaceRecord

from support.face_vectors import faces_of, structured

DIM = 128
REPO = Path(__file__).resolve().parents[2]


def open_gallery(path: Path, embedder: str = "synthetic", **kwargs) -> Gallery:
    kwargs.setdefault("index", "ivf")
    kwargs.setdefault("snapshot_min_faces", 0)
    return Gallery(SQLiteStore(path, embedder, DIM), embedder, DIM, **kwargs)


def listing(gallery: Gallery) -> dict[str, list[str]]:
    return {name: sorted(r.face_id for r in gallery.faces_of(name) or []) for name, _ in gallery.identities()}


def from_store(path: Path, tmp_path: Path) -> dict[str, list[str]]:
    """What the store holds, loaded without any snapshot."""
    gallery = open_gallery(path, snapshot_dir=tmp_path / "none", snapshot_min_faces=10**9)
    try:
        return listing(gallery)
    finally:
        gallery.close()


@pytest.fixture
def enrolled(tmp_path):
    """A 1,500-face gallery closed with its snapshot written, and the people's centres."""
    vectors, who, centres = structured(300, 5, DIM, seed=11)
    path = tmp_path / "gallery.sqlite3"
    gallery = open_gallery(path)
    for person in range(300):
        gallery.enroll(f"person{person}", vectors[who == person])
    assert gallery.index.wait_for_ann(300)
    gallery.close()
    assert (tmp_path / "gallery.sqlite3.snapshot").exists()
    return path, centres


def test_a_start_from_the_snapshot_applies_only_the_later_changes(enrolled, tmp_path, caplog):
    path, centres = enrolled
    rng = np.random.default_rng(1)
    # Written after the snapshot, by a process that kept no snapshot (a crash before its rewrite).
    store = SQLiteStore(path, "synthetic", DIM)
    late = faces_of(centres, np.array([0, 0, 0]), rng)
    stamp = "2026-01-01T00:00:00.000000+00:00"
    store.add_faces([FaceRecord(f"late{i:028d}", "Latecomer", v, "synthetic", stamp) for i, v in enumerate(late)])
    assert store.delete_identity("person7") == 5
    gone_face = sorted(r.face_id for r in store.load_all() if r.identity == "person8")[0]
    assert store.delete_face("person8", gone_face)
    store.close()
    caplog.set_level(logging.INFO, logger="inference_service.gallery.warm_start")
    gallery = open_gallery(path)
    try:
        assert gallery.index.ann is not None and not gallery.index.building  # the IVF came from the file
        assert "1500 faces loaded" not in caplog.text
        assert "6 faces deleted" in caplog.text and "3 faces added since" in caplog.text
        assert listing(gallery) == from_store(path, tmp_path)
        assert gallery.search(late[:1], 0.5)[0].identity == "Latecomer"
        assert all(
            c.identity != "person7" for c in gallery.search(faces_of(centres, np.array([7]), rng), 0.5)[0].candidates
        )
    finally:
        gallery.close()


def test_renames_merges_and_moves_after_the_snapshot_are_applied(enrolled, tmp_path, caplog):
    path, _ = enrolled
    store = SQLiteStore(path, "synthetic", DIM)  # curated by a process that kept no snapshot
    store.rename_identity("person1", "Renamed One")
    store.merge_identity("person2", "person3")
    moved = sorted(r.face_id for r in store.load_all() if r.identity == "person4")[0]
    store.move_face("person4", moved, "person5")
    store.close()
    caplog.set_level(logging.INFO, logger="inference_service.gallery.warm_start")
    gallery = open_gallery(path)
    try:
        assert gallery.from_snapshot
        held = listing(gallery)
        assert held == from_store(path, tmp_path)
        assert "person1" not in held and len(held["Renamed One"]) == 5
        assert "person2" not in held and len(held["person3"]) == 10
        assert moved in held["person5"] and moved not in held["person4"]
    finally:
        gallery.close()


def test_writes_appended_after_the_snapshot_are_read_without_comparing_ids(enrolled, tmp_path, caplog):
    path, centres = enrolled
    store = SQLiteStore(path, "synthetic", DIM)
    stamp = "2026-01-01T00:00:00.000000+00:00"
    vectors = faces_of(centres, np.array([1, 2]), np.random.default_rng(2))
    store.add_faces([FaceRecord(f"new{i:029d}", "person1", v, "synthetic", stamp) for i, v in enumerate(vectors)])
    store.close()
    caplog.set_level(logging.INFO, logger="inference_service.gallery.warm_start")
    gallery = open_gallery(path)
    try:
        assert "2 faces added since" in caplog.text and "deleted" not in caplog.text
        assert len(gallery.faces_of("person1")) == 7
        assert listing(gallery) == from_store(path, tmp_path)
    finally:
        gallery.close()


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_a_damaged_snapshot_is_rebuilt_from_the_store_with_a_log_line(enrolled, tmp_path, caplog, damage):
    path, _ = enrolled
    snap = tmp_path / "gallery.sqlite3.snapshot"
    data = bytearray(snap.read_bytes())
    if damage == "flip":
        data[len(data) // 3] ^= 0x40  # inside the vectors
    elif damage == "truncate":
        del data[len(data) // 2 :]
    else:
        data = bytearray()
    snap.write_bytes(bytes(data))
    caplog.set_level(logging.INFO, logger="inference_service.gallery.warm_start")
    gallery = open_gallery(path)
    try:
        assert "not used" in caplog.text and "rebuilding from the store" in caplog.text
        assert listing(gallery) == from_store(path, tmp_path)
        assert gallery.stats()["faces"] == 1500
    finally:
        gallery.close()
    assert len(snapshot_file.read(snap)[1]["face_ids"]) == 1500  # rewritten whole at close


def test_a_snapshot_of_another_embedder_or_another_gallery_is_not_served(enrolled, tmp_path, caplog):
    path, _ = enrolled
    caplog.set_level(logging.INFO, logger="inference_service.gallery.warm_start")
    for embedder, folder in (("other-model", tmp_path / "b"), ("synthetic", tmp_path / "c")):
        folder.mkdir()
        other = folder / "gallery.sqlite3"
        gallery = open_gallery(other, embedder, snapshot_min_faces=10**9)
        vectors, who, _ = structured(20, 3, DIM, seed=5)
        gallery.enroll("someone", vectors[:3])
        gallery.close()
        shutil.copy(tmp_path / "gallery.sqlite3.snapshot", folder / "gallery.sqlite3.snapshot")
        caplog.clear()
        gallery = open_gallery(other, embedder)
        try:
            assert "not used" in caplog.text
            assert ("made for synthetic" if embedder == "other-model" else "shares too few") in caplog.text
            assert listing(gallery) == {"someone": sorted(r.face_id for r in gallery.faces_of("someone"))}
        finally:
            gallery.close()


def test_an_erasure_rewrites_the_snapshot_within_seconds(enrolled, tmp_path, monkeypatch):
    path, _ = enrolled
    monkeypatch.setattr(warm_start, "ERASURE_DELAY_S", 0.2)
    snap = tmp_path / "gallery.sqlite3.snapshot"
    gallery = open_gallery(path)
    try:
        erased = [r.face_id.encode() for r in gallery.faces_of("person42")]
        assert np.isin(erased, snapshot_file.read(snap)[1]["face_ids"]).all()
        assert gallery.delete_identity("person42")
        deadline = time.monotonic() + 10
        while gallery.snapshots.written == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        meta, arrays = snapshot_file.read(snap)
        assert not np.isin(erased, arrays["face_ids"]).any()
        assert len(arrays["face_ids"]) == 1495 and meta["position"]["deleted"] == 5
    finally:
        gallery.close()


WRITER = """
import sys, numpy as np
from pathlib import Path
from inference_service.gallery import snapshot
path = Path(sys.argv[1])
big = np.random.default_rng(0).standard_normal(16 * 2**20, dtype=np.float32)  # 64 MB per write
for generation in range(1, 10**6):
    snapshot.write(path, {"generation": generation}, [("data", big.dtype, big.shape, [big[: len(big) // 2], big[len(big) // 2 :]])])
    print(generation, flush=True)
"""


def test_kill_9_while_a_snapshot_is_written_leaves_the_old_or_the_new_one(tmp_path):
    path = tmp_path / "gallery.sqlite3.snapshot"
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        done = int(child.stdout.readline())  # one snapshot complete: the next one is in flight
        deadline = time.monotonic() + 20
        while not list(tmp_path.glob(".*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.001)
        assert list(tmp_path.glob(".*.tmp")), "the writer never started a second snapshot"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        done = max([done, *(int(line) for line in child.stdout.read().split())])
    finally:
        child.kill()
    meta, arrays = snapshot_file.read(path)  # complete and every checksum right
    assert meta["generation"] in (done, done + 1)
    assert arrays["data"].shape == (16 * 2**20,)
    snapshot_file.remove_partials(path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
