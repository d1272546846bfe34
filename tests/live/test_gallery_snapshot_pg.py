"""Replica start-up from a local snapshot over a real PostgreSQL gallery: the change log after the
snapshot's ``seq`` is applied, a log trimmed past it makes the replica reload, and a snapshot
of another database is not served."""

from __future__ import annotations

import logging
import shutil
import time

import numpy as np
import pytest

from inference_service.gallery import Gallery
from inference_service.gallery.pg_store import PostgresStore
from inference_service.gallery.replica import ReplicaSync

from support.face_vectors import structured
from support.records import EMBEDDER

DIM = 128


class Replica:
    """One API process: its store, its gallery (with a snapshot folder) and its sync thread."""

    def __init__(self, url: str, folder, **store_args) -> None:
        self.store = PostgresStore(url, EMBEDDER, DIM, **store_args)
        self.gallery = Gallery(self.store, EMBEDDER, DIM, index="ivf", snapshot_dir=folder, snapshot_min_faces=0)
        self.sync = ReplicaSync(self.store, self.gallery, poll_s=0.2).start()

    def faces(self) -> set[str]:
        # an identity listed may be gone by the time its faces are asked for (the sync thread applies meanwhile)
        return {r.face_id for name, _ in self.gallery.identities() for r in self.gallery.faces_of(name) or []}

    def close(self) -> None:
        self.sync.stop()
        self.gallery.close()


def wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def people():
    vectors, who, _ = structured(300, 5, DIM, seed=21)
    return vectors, who


def enroll_all(replica: Replica, vectors: np.ndarray, who: np.ndarray) -> None:
    for person in range(int(who.max()) + 1):
        replica.gallery.enroll(f"person{person}", vectors[who == person])


@pytest.mark.parametrize("trimmed", [False, True])
def test_a_replica_starts_from_its_snapshot_and_applies_the_log_after_it(pg_url, tmp_path, people, caplog, trimmed):
    vectors, who = people
    first = Replica(pg_url, tmp_path / "a")
    enroll_all(first, vectors, who)
    assert first.gallery.index.wait_for_ann(300)
    first.close()  # writes its snapshot
    assert (tmp_path / "a" / "gallery.snapshot").exists()
    # Meanwhile another replica writes (trimming its log as it goes, in the second case).
    keep = {"log_keep": 1, "log_keep_s": 0, "trim_every": 1} if trimmed else {}
    other = Replica(pg_url, tmp_path / "b", **keep)
    newcomer = structured(1, 2, DIM, seed=99)[0]
    other.gallery.enroll("Newcomer", newcomer)
    assert other.gallery.delete_identity("person5")
    caplog.set_level(logging.INFO)
    again = Replica(pg_url, tmp_path / "a")
    try:
        assert again.gallery.from_snapshot
        wait_for(lambda: again.faces() == other.faces(), 10)
        assert "person5" not in dict(again.gallery.identities())
        assert again.gallery.search(newcomer[:1], 0.5)[0].identity == "Newcomer"
        assert ("reloading the whole gallery" in caplog.text) == trimmed
    finally:
        again.close()
        other.close()


def test_a_snapshot_of_another_database_is_not_served(pg_server, tmp_path, people, caplog):
    vectors, who = people
    one = pg_server.create_database("snapshot_one")
    two = pg_server.create_database("snapshot_two")
    first = Replica(one, tmp_path / "a")
    enroll_all(first, vectors[:500], who[:500])
    first.close()
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / "gallery.snapshot", tmp_path / "b" / "gallery.snapshot")
    caplog.set_level(logging.INFO)
    second = Replica(two, tmp_path / "b")
    try:
        assert not second.gallery.from_snapshot
        assert "made for another store" in caplog.text
        assert second.faces() == set()
    finally:
        second.close()
