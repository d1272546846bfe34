"""The PostgreSQL gallery in process, on a real throwaway server: replica sync (notifications,
polling, the change-log ordering race, read-your-writes, a trimmed log), an unreachable server,
and ``python -m inference_service.gallery copy`` between SQLite and PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import psycopg
import pytest

from inference_service.gallery import Gallery, GalleryMismatchError, GalleryUnavailableError, open_store
from inference_service.gallery.pg_store import PostgresStore
from inference_service.gallery.replica import ReplicaSync

from support.live_servers import REPO
from support.records import DIM, EMBEDDER, make_records


def vectors(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = rng.standard_normal((count, DIM)).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


class Replica:
    """What one API process holds: its own store (pool), in-memory gallery and sync."""

    def __init__(self, url: str, poll_s: float = 60.0, listen: bool = True, **store_args) -> None:
        self.store = PostgresStore(url, EMBEDDER, DIM, **store_args)
        self.gallery = Gallery(self.store, EMBEDDER, DIM)
        self.sync = ReplicaSync(self.store, self.gallery, poll_s)
        if listen:
            self.sync.start()
            wait_for(lambda: self.sync.connected, 10)
        else:
            self.store.observer = self.sync  # writes catch up in their transaction; no thread

    def faces(self) -> set[str]:
        return {r.face_id for name, _ in self.gallery.identities() for r in self.gallery.faces_of(name)}

    def close(self) -> None:
        self.gallery.close()


def wait_for(condition, timeout: float) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - start


@pytest.fixture
def replicas(pg_url):
    made: list[Replica] = []

    def make(**kwargs) -> Replica:
        made.append(Replica(pg_url, **kwargs))
        return made[-1]

    yield make
    for replica in made:
        replica.close()


def test_a_write_on_one_replica_reaches_the_others_by_notification(replicas):
    a, b, c = replicas(), replicas(), replicas()  # polling every 60 s: only NOTIFY can be this fast
    added = a.gallery.enroll("Ada Lovelace", vectors(2, 1))
    for other in (b, c):
        wait_for(lambda: dict(other.gallery.identities()).get("Ada Lovelace") == 2, 1.0)
        best = other.gallery.search(vectors(2, 1)[:1], threshold=0.9)[0]
        assert best.identity == "Ada Lovelace" and best.similarity > 0.999
    assert b.gallery.delete_face("Ada Lovelace", added[0].face_id)
    wait_for(lambda: dict(a.gallery.identities()).get("Ada Lovelace") == 1, 1.0)
    assert c.gallery.delete_identity("Ada Lovelace")
    for other in (a, b):
        wait_for(lambda: other.gallery.identities() == [], 1.0)
    assert a.sync.status()["behind"] == 0 and a.sync.applied == c.sync.applied


def test_a_writer_applies_earlier_writes_before_its_own(replicas):
    """Read-your-writes without any listener: the write's transaction catches up first."""
    a = replicas(listen=False)
    b = replicas(listen=False)
    first = a.gallery.enroll("Ada", vectors(1, 1))
    second = b.gallery.enroll("Bob", vectors(1, 2))
    assert b.faces() == {first[0].face_id, second[0].face_id}
    assert b.gallery.delete_identity("Ada")
    a.gallery.enroll("Cy", vectors(1, 3))
    assert {name for name, _ in a.gallery.identities()} == {"Bob", "Cy"}
    assert a.sync.applied == b.sync.applied + 1


def test_ordering_race_a_slow_transaction_is_not_skipped(pg_url, replicas):
    """T1 takes the next seq then sleeps before committing while T2 commits: the replica must
    end with both (it would record T2's seq as applied and never read T1's without the lock)."""
    watcher = replicas()  # listens; polls only every 60 s
    slow_store = PostgresStore(pg_url, EMBEDDER, DIM)
    fast_store = PostgresStore(pg_url, EMBEDDER, DIM)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION slow_log() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.name = 'Slow' THEN PERFORM pg_sleep(1.5); END IF; RETURN NEW; END $$"
        )
        conn.execute("CREATE TRIGGER slow_log AFTER INSERT ON gallery_changes FOR EACH ROW EXECUTE FUNCTION slow_log()")
    slow, fast = make_records("Slow", 1, 1), make_records("Fast", 1, 2)
    try:
        writer = threading.Thread(target=slow_store.add_faces, args=(slow,))
        writer.start()
        time.sleep(0.5)  # T1 holds its seq and sleeps inside its transaction
        fast_store.add_faces(fast)
        writer.join()
        wait_for(lambda: watcher.faces() == {slow[0].face_id, fast[0].face_id}, 3.0)
    finally:
        slow_store.close()
        fast_store.close()


def test_polling_catches_a_change_nobody_announced(pg_url, replicas):
    """A change logged without NOTIFY (a lost notification) is applied by the next poll."""
    watcher = replicas(poll_s=0.5)
    record = make_records("Quiet", 1, 5)[0]
    with psycopg.connect(pg_url) as conn:
        (identity_id,) = conn.execute(
            "INSERT INTO gallery_identities (name_key, name, created_at) VALUES ('quiet', 'Quiet', now()) RETURNING id"
        ).fetchone()
        conn.execute(
            "INSERT INTO gallery_faces (face_id, identity_id, embedding, created_at) VALUES (%s, %s, %s, now())",
            (record.face_id, identity_id, record.embedding.astype("<f4").tobytes()),
        )
        conn.execute(
            "INSERT INTO gallery_changes (seq, op, name_key, name, face_ids) "
            "VALUES (nextval('gallery_change_seq'), 'add', 'quiet', 'Quiet', ARRAY[%s::uuid])",
            (record.face_id,),
        )
    time.sleep(0.1)
    assert "Quiet" not in dict(watcher.gallery.identities())  # no notification: not yet
    wait_for(lambda: "Quiet" in dict(watcher.gallery.identities()), 1.5)


def test_a_replica_whose_listener_was_cut_catches_up_on_reconnect(pg_url, replicas):
    watcher = replicas()  # polls every 60 s: only the reconnect's catch-up can find the write
    store = PostgresStore(pg_url, EMBEDDER, DIM)
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            cut = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%%' AND pid <> pg_backend_pid()"
            ).fetchall()
        assert cut == [(True,)]
        store.add_faces(make_records("Missed", 1, 6))  # its NOTIFY reaches nobody
        wait_for(lambda: "Missed" in dict(watcher.gallery.identities()), 3.0)
    finally:
        store.close()


def test_replica_behind_a_trimmed_log_reloads(replicas):
    behind = replicas(listen=False)
    stale = behind.gallery.enroll("Gone Soon", vectors(1, 9))
    writer = replicas(listen=False, log_keep=1, log_keep_s=0, trim_every=1)
    assert writer.gallery.delete_identity("Gone Soon")
    kept = [writer.gallery.enroll(f"P{i}", vectors(1, 10 + i))[0].face_id for i in range(5)]
    before = behind.sync.applied
    behind.sync.catch_up()
    assert behind.faces() == set(kept)
    assert stale[0].face_id not in behind.faces()
    assert behind.sync.applied > before and behind.sync.status()["behind"] == 0


def test_unreachable_server_refuses_writes_and_keeps_serving_reads(pg_server, replicas):
    a = replicas(poll_s=0.5)
    b = replicas(poll_s=0.5)
    a.gallery.enroll("Ada", vectors(1, 1))
    wait_for(lambda: "Ada" in dict(b.gallery.identities()), 1.0)
    pg_server.stop("immediate")
    try:
        with pytest.raises(GalleryUnavailableError):
            a.gallery.enroll("Bob", vectors(1, 2))
        with pytest.raises(GalleryUnavailableError):
            a.gallery.delete_identity("Ada")
        assert {n for n, _ in a.gallery.identities()} == {"Ada"}  # nothing half-applied
        assert b.gallery.search(vectors(1, 1), threshold=0.9)[0].identity == "Ada"
        wait_for(lambda: not b.sync.connected, 5.0)
    finally:
        pg_server.start()
    wait_for(lambda: a.sync.connected and b.sync.connected, 10.0)
    a.gallery.enroll("Bob", vectors(1, 2))
    wait_for(lambda: "Bob" in dict(b.gallery.identities()), 2.0)


def test_copy_sqlite_to_postgresql_and_back_is_idempotent(pg_url, tmp_path):
    source = tmp_path / "source.sqlite3"
    store = open_store(source, EMBEDDER, DIM)
    records = make_records("Ada", 3, 1) + make_records("Bob", 2, 2, box=False)
    store.add_faces(records)
    store.close()

    def copy(src: str, dst: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "inference_service.gallery", "copy", src, dst],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )

    first = copy(str(source), pg_url)
    assert first.returncode == 0, first.stderr
    assert "copied 5 faces of 2 identities" in first.stdout
    again = copy(f"sqlite:///{source}", pg_url)
    assert again.returncode == 0 and "copied 0 faces" in again.stdout and "5 already there" in again.stdout
    back = tmp_path / "back.sqlite3"
    assert copy(pg_url, str(back)).returncode == 0
    loaded = open_store(back, EMBEDDER, DIM).load_all()
    assert sorted(r.face_id for r in loaded) == sorted(r.face_id for r in records)
    want = {r.face_id: r for r in records}
    for rec in loaded:
        np.testing.assert_array_equal(rec.embedding, want[rec.face_id].embedding)
        assert (rec.identity, rec.box, rec.created_at) == (
            want[rec.face_id].identity,
            want[rec.face_id].box,
            want[rec.face_id].created_at,
        )
    other = tmp_path / "other.sqlite3"
    open_store(other, "facenet-vggface2", 512).close()
    refused = copy(pg_url, str(other))
    assert refused.returncode == 2 and "different models cannot be mixed" in refused.stderr


def test_database_of_another_embedder_is_refused_at_open(pg_url):
    open_store(pg_url, EMBEDDER, DIM).close()
    with pytest.raises(GalleryMismatchError, match="FACE_EMBEDDER=dlib-resnet"):
        open_store(pg_url, "facenet-vggface2", 512)


def test_pipeline_matcher_searches_a_postgresql_gallery(pg_url, engine, faces_dir):
    """``--gallery postgresql://...``: the pipeline opens the shared gallery like a file."""
    from inference_service.engine import load_image
    from pipeline.video.matchers import LocalMatcher

    photo = load_image((faces_dir / "gallery/obama/1.jpg").read_bytes())
    embedding = max(engine.analyze(photo), key=lambda a: a.face.box[2] - a.face.box[0]).embedding
    gallery = Gallery.open(pg_url, engine.embedder.name, engine.embedder.dim)
    gallery.enroll("obama", embedding[None, :])
    gallery.close()
    matcher = LocalMatcher(pg_url, embedder="dlib-resnet")
    try:
        assert matcher.source == f"gallery {pg_url}"
        probe = load_image((faces_dir / "probes/obama_3.jpg").read_bytes())
        found = matcher.analyze([probe], [0])[0]
        assert [max(d.candidates, key=d.candidates.get) for d in found] == ["obama"]
    finally:
        matcher.close()
