"""The incremental gallery index: exact answers, atomic writes, identities by name key.

Real ``Gallery`` objects over real stores (memory and SQLite files) with random unit vectors; the
answers are compared with a brute-force reference computed here. Small block sizes are set so
that a few thousand faces span many blocks, appends cross block ends and deletes compact blocks.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from inference_service.gallery import FaceRecord, Gallery, MemoryStore, SQLiteStore, name_key
from inference_service.gallery import index as index_module

DIM = 16


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(index_module, "BLOCK_BYTES", 64 * DIM * 4)  # 64 faces per block
    monkeypatch.setattr(index_module, "MIN_BLOCK_ROWS", 8)


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def reference(faces: dict[str, list[np.ndarray]], query: np.ndarray, top_k: int) -> list[tuple[str, float]]:
    """Per identity, the best cosine similarity over its faces; the top_k identities, best first."""
    best = {name: float(max(np.dot(v, query) for v in vectors)) for name, vectors in faces.items() if vectors}
    return sorted(best.items(), key=lambda item: -item[1])[:top_k]


def assert_same(gallery: Gallery, faces: dict[str, list[np.ndarray]], queries: np.ndarray, top_k: int = 5):
    for query, got in zip(queries, gallery.search(queries, threshold=0.5, top_k=top_k)):
        want = reference(faces, query, top_k)
        assert [c.identity for c in got.candidates] == [name for name, _ in want]
        assert np.allclose([c.similarity for c in got.candidates], [s for _, s in want], atol=1e-5)
        assert len({name_key(c.identity) for c in got.candidates}) == len(got.candidates)


def test_search_matches_brute_force_through_enrolls_and_deletes():
    rng = np.random.default_rng(0)
    gallery = Gallery(MemoryStore(), "test", DIM)
    faces: dict[str, list[np.ndarray]] = {}
    enrolled: dict[str, list[FaceRecord]] = {}
    queries = unit(rng, 20)
    for step in range(120):
        name = f"person{rng.integers(40)}"
        if step % 7 == 3 and enrolled:  # delete an identity
            victim = sorted(enrolled)[int(rng.integers(len(enrolled)))]
            assert gallery.delete_identity(victim)
            del enrolled[victim], faces[victim]
        elif step % 5 == 4 and enrolled:  # delete one face
            victim = sorted(enrolled)[int(rng.integers(len(enrolled)))]
            record = enrolled[victim].pop(int(rng.integers(len(enrolled[victim]))))
            assert gallery.delete_face(victim, record.face_id)
            faces[victim] = [r.embedding for r in enrolled[victim]]
            if not enrolled[victim]:
                del enrolled[victim], faces[victim]
        else:
            records = gallery.enroll(name, unit(rng, int(rng.integers(1, 12))))
            enrolled.setdefault(name, []).extend(records)
            faces.setdefault(name, []).extend(r.embedding for r in records)
        assert gallery.stats() == {"identities": len(faces), "faces": sum(map(len, faces.values()))}
        assert gallery.identities() == sorted((n, len(v)) for n, v in faces.items())
        assert_same(gallery, faces, queries, top_k=int(rng.integers(1, 8)))
    for name, records in enrolled.items():
        assert [r.face_id for r in gallery.faces_of(name)] == [r.face_id for r in records]
    assert gallery._index.block_rows == 64 and len(gallery._index._view.blocks) > 3  # the paths across blocks ran


def test_one_identity_filling_the_top_is_listed_once_and_the_others_follow():
    rng = np.random.default_rng(1)
    gallery = Gallery(MemoryStore(), "test", DIM)
    query = unit(rng, 1)[0]
    near = query + 0.05 * unit(rng, 600)  # 600 faces of one person, all closer than anyone else
    gallery.enroll("crowd", near)
    faces = {"crowd": list(near / np.linalg.norm(near, axis=1, keepdims=True))}
    for i in range(30):
        vectors = unit(rng, 3)
        gallery.enroll(f"other{i}", vectors)
        faces[f"other{i}"] = list(vectors)
    assert_same(gallery, faces, query[None, :], top_k=5)
    assert gallery.search(query, 0.5, top_k=40)[0].candidates.__len__() == 31


def test_empty_gallery_and_everything_deleted_answer_unknown():
    rng = np.random.default_rng(2)
    gallery = Gallery(MemoryStore(), "test", DIM)
    assert gallery.search(unit(rng, 2), 0.5)[0].candidates == []
    gallery.enroll("a", unit(rng, 100))
    assert gallery.delete_identity("a")
    result = gallery.search(unit(rng, 1), 0.5)
    assert result[0].identity is None and result[0].candidates == []
    assert gallery.stats() == {"identities": 0, "faces": 0} and gallery.identities() == []


def test_identities_are_one_person_whatever_the_case_or_byte_form():
    rng = np.random.default_rng(3)
    gallery = Gallery(MemoryStore(), "test", DIM)
    first = gallery.enroll("Zoe\u0308 Obama", unit(rng, 2))  # NFD: stored in NFC
    assert first[0].identity == "Zo\u00eb Obama"
    more = gallery.enroll("ZOË OBAMA", unit(rng, 1))
    assert more[0].identity == "Zo\u00eb Obama"  # the first spelling is kept
    assert gallery.identities() == [("Zo\u00eb Obama", 3)]
    assert [r.face_id for r in gallery.faces_of("zoë obama")] == [r.face_id for r in first + more]
    assert gallery.search(more[0].embedding, 0.5)[0].identity == "Zo\u00eb Obama"
    assert gallery.delete_face("ZOË obama", first[0].face_id)
    assert not gallery.delete_face("zoë obama", first[0].face_id)  # already gone
    assert len(gallery.faces_of("Zoë Obama")) == 2
    assert gallery.delete_identity("zoë OBAMA")
    assert gallery.faces_of("Zoë Obama") is None and not gallery.delete_identity("Zoë Obama")
    assert gallery.enroll("zoë obama", unit(rng, 1))[0].identity == "zoë obama"  # a new person now


def test_the_sqlite_gallery_reopens_with_the_same_faces_and_answers(tmp_path):
    rng = np.random.default_rng(4)
    path = tmp_path / "gallery.sqlite3"
    gallery = Gallery(SQLiteStore(path, "test", DIM), "test", DIM)
    for i in range(50):
        gallery.enroll(f"Person {i % 17}", unit(rng, 3), [(i, i + 1.5, i + 10, i + 20.25), None, (0, 0, 1, 1)])
    gallery.delete_identity("person 3")
    gallery.delete_face("PERSON 4", gallery.faces_of("person 4")[1].face_id)
    queries = unit(rng, 10)
    before = gallery.search(queries, 0.5)
    listing = {name: gallery.faces_of(name) for name, _ in gallery.identities()}
    gallery.close()

    reopened = Gallery.open(path, "test", DIM)
    try:
        after = reopened.search(queries, 0.5)
        assert [[c.identity for c in r.candidates] for r in after] == [
            [c.identity for c in r.candidates] for r in before
        ]
        assert np.allclose(
            [[c.similarity for c in r.candidates] for r in after],
            [[c.similarity for c in r.candidates] for r in before],
            atol=1e-6,
        )
        assert reopened.identities() == sorted((name, len(records)) for name, records in listing.items())
        _same_records(reopened, listing)
    finally:
        reopened.close()


def _same_records(gallery: Gallery, listing: dict[str, list[FaceRecord]]) -> None:
    for name, records in listing.items():
        again = gallery.faces_of(name)
        assert [(r.face_id, r.identity, r.created_at, r.box) for r in again] == [
            (r.face_id, r.identity, r.created_at, r.box) for r in records
        ]
        assert all(np.array_equal(a.embedding, b.embedding) for a, b in zip(again, records))


def test_applying_a_committed_change_twice_changes_nothing():
    rng = np.random.default_rng(5)
    store = MemoryStore()
    writer = Gallery(store, "test", DIM)
    records = writer.enroll("Ada", unit(rng, 3))
    replica = Gallery(MemoryStore(), "test", DIM)
    assert replica.apply_added(records) == 3
    assert replica.apply_added(records) == 0  # e.g. the change log replayed after a reconnect
    assert replica.identities() == [("Ada", 3)]
    assert replica.apply_removed_faces("ada", [records[0].face_id]) == 1
    assert replica.apply_removed_faces("ada", [records[0].face_id]) == 0
    assert replica.apply_removed_identity("ADA") == 2
    assert replica.apply_removed_identity("ADA") == 0
    assert replica.stats() == {"identities": 0, "faces": 0}


def test_readers_never_see_half_a_write():
    """A writer enrolls people of three faces each and deletes them again while a reader
    searches: each of a person's faces answers its own query, and one search call (one view)
    must find all three or none of them, and faces_of must list 3 faces or none."""
    rng = np.random.default_rng(6)
    gallery = Gallery(MemoryStore(), "test", DIM)
    for i in range(40):  # background crowd spread over several blocks
        gallery.enroll(f"crowd{i}", unit(rng, 5))
    people = [(f"Person{i}", unit(rng, 3)) for i in range(30)]
    stop = threading.Event()
    problems: list[str] = []
    checks = {"searches": 0, "seen": 0}

    def read() -> None:
        while not stop.is_set():
            for name, vectors in people:
                found = [
                    any(c.identity == name and c.similarity > 0.9999 for c in r.candidates)
                    for r in gallery.search(vectors, 0.5, top_k=3)
                ]
                if any(found) and not all(found):
                    problems.append(f"{name}: search saw {found}")
                listed = gallery.faces_of(name)
                if listed is not None and len(listed) != 3:
                    problems.append(f"{name}: faces_of gave {len(listed)}")
                stats = gallery.stats()
                if (stats["faces"] - 200) % 3:
                    problems.append(f"stats {stats}")
                checks["searches"] += 1
                checks["seen"] += any(found)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        # Write until the reader has checked enough (it may get little CPU on a loaded machine).
        deadline = time.monotonic() + 60
        rounds = 0
        while (rounds < 6 or checks["searches"] < 300 or checks["seen"] < 10) and time.monotonic() < deadline:
            for name, vectors in people:
                gallery.enroll(name, vectors)
            for name, _ in people:
                assert gallery.delete_identity(name)
            rounds += 1
    finally:
        stop.set()
        reader.join()
    assert not problems, problems[:5]
    assert checks["searches"] >= 300 and checks["seen"] >= 10, checks


def test_the_index_holds_columns_not_objects():
    """A 20,000-face table costs its vectors plus a few bytes of columns per face."""
    rng = np.random.default_rng(7)
    n, dim = 20_000, 128
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = MemoryStore()
    store.add_faces(
        [FaceRecord(f"{i:032x}", f"id{i // 10}", vectors[i], "test", "2026-01-01T00:00:00+00:00") for i in range(n)]
    )
    gallery = Gallery(store, "test", dim)
    assert gallery._index.nbytes() <= 1.15 * vectors.nbytes
    assert gallery.stats() == {"identities": n // 10, "faces": n}
