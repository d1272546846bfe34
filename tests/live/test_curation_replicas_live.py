"""Curation across real API processes on one real PostgreSQL gallery, as behind a load balancer.

A rename, merge or move answered by one replica is seen by the others within a second and never
half: polling another replica's GET /identities and GET /identities/{name} while a 100-face
identity is merged shows the old state or the new one, never faces in both or in neither. A
replica killed with SIGKILL in the middle of a burst of merges, moves and renames it was
answering loses nothing it acknowledged: every 200 is in the database, on the surviving replica,
and on the killed one once restarted; what was in flight is there whole or not at all.

Bulk faces are written straight into the database through the store (random unit vectors, as
the store suites do): enrolling hundreds of photos over HTTP would cost minutes on CI's cores
without testing anything more; the real photos enrolled over HTTP cover the model path.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from inference_service.gallery.audit import Actor, WriteContext, acting
from inference_service.gallery.factory import open_store

from support.live_servers import Server, start_api
from support.records import DIM, EMBEDDER, make_records

KEY = {"X-API-Key": "key-ops"}
BIG = 100  # faces of the identity merged while another replica is watched


def names(server: Server) -> dict[str, int]:
    answer = requests.get(f"{server.url}/identities", headers=KEY, timeout=10)
    answer.raise_for_status()
    return {item["name"]: item["faces"] for item in answer.json()["identities"]}


def faces(server: Server, name: str) -> set[str] | None:
    """The face ids of an identity as a replica shows them, None when it has no such identity."""
    answer = requests.get(f"{server.url}/identities/{name}", headers=KEY, timeout=10)
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    return {face["face_id"] for face in answer.json()["faces"]}


def stored(url: str) -> dict[str, set[str]]:
    """identity name -> face ids, as the database holds them."""
    import psycopg

    out: dict[str, set[str]] = {}
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT i.name, f.face_id FROM gallery_faces f JOIN gallery_identities i ON i.id = f.identity_id"
        ).fetchall()
    for name, face_id in rows:
        out.setdefault(name, set()).add(face_id.hex)
    return out


def shown(server: Server) -> dict[str, set[str]]:
    """identity name -> face ids, as a replica shows them over HTTP."""
    return {name: faces(server, name) or set() for name in names(server)}


def until(condition, timeout: float) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - start


def post(server: Server, path: str, body: dict) -> requests.Response:
    if path.startswith("PATCH "):
        return requests.patch(f"{server.url}{path[6:]}", json=body, headers=KEY, timeout=60)
    return requests.post(f"{server.url}{path}", json=body, headers=KEY, timeout=60)


@pytest.fixture(scope="module")
def cluster(pg_server, tmp_path_factory):
    """Two API replicas on one fresh database, and the store for writing bulk faces into it."""
    url = pg_server.create_database("curation_replicas_live")
    logs = tmp_path_factory.mktemp("curation-replica-logs")
    servers: list[Server] = []

    def launch(name: str) -> Server:
        # polling every 30 s: what a replica shows within a second came through the change log's notifications
        server = start_api(logs, url, name=name, FACE_SYNC_POLL_S="30", FACE_WORKERS="1", FACE_API_KEYS="ops:key-ops")
        servers.append(server)
        return server

    with ThreadPoolExecutor(2) as pool:
        apis = list(pool.map(launch, ["api1", "api2"]))
    store = open_store(url, EMBEDDER, DIM)
    yield {"url": url, "apis": apis, "launch": launch, "store": store}
    store.close()
    for server in servers:
        server.stop()


def add_bulk(store, identity: str, count: int, seed: int) -> list[str]:
    records = make_records(identity, count, seed=seed)
    with acting(WriteContext(actor=Actor("test"))):
        store.add_faces(records)
    return [r.face_id for r in records]


WATCHED = {"Obama", "Barack", "Barack O", "Obama again", "Biden"}


def watched(state: dict[str, set[str]]) -> dict[str, set[str]]:
    return {name: ids for name, ids in state.items() if name in WATCHED}


def test_rename_merge_and_move_on_one_are_seen_by_the_other_within_a_second(cluster, faces_dir):
    a, b = cluster["apis"]
    for name, folder in (("Obama", "obama/1.jpg"), ("Barack", "obama/2.jpg"), ("Biden", "biden/1.jpg")):
        path = faces_dir / "gallery" / folder
        with open(path, "rb") as fh:
            files = {"image": (path.name, fh, "image/jpeg")}
            answer = requests.post(f"{a.url}/identities/{name}/faces", files=files, headers=KEY, timeout=120)
        assert answer.status_code == 201, answer.text
    until(lambda: {"Obama", "Barack", "Biden"} <= set(names(b)), 1.0)

    steps = [
        (a, "PATCH /identities/Barack", {"name": "Barack O"}),
        (b, "/identities/Barack%20O/merge", {"into": "Obama"}),
        (a, "/identities/Obama/faces/{face}/move", {"to": "Obama again"}),
    ]
    for writer, path, body in steps:
        if "{face}" in path:
            path = path.format(face=sorted(faces(writer, "Obama") or [])[0])
        answer = post(writer, path, body)
        assert answer.status_code == 200, answer.text
        truth = watched(stored(cluster["url"]))
        assert watched(shown(writer)) == truth  # read-your-writes on the replica that answered
        other = b if writer is a else a
        assert until(lambda: watched(shown(other)) == truth, 1.0) < 1.0
    assert {n: len(ids) for n, ids in watched(stored(cluster["url"])).items()} == {
        "Obama": 1,
        "Obama again": 1,
        "Biden": 1,
    }
    # the merged identity's export, from the other replica, holds both people's curation and the acting key
    audit = requests.get(f"{b.url}/identities/Obama/export", headers=KEY, timeout=10).json()["audit"]
    curated = [e for e in audit if e["action"] in {"rename", "merge", "move_face"}]
    assert [e["action"] for e in curated] == ["rename", "merge", "move_face"]
    assert all(e["key_label"] == "ops" for e in curated)


def test_a_merge_of_100_faces_is_never_half_on_the_other_replica(cluster):
    a, b = cluster["apis"]
    store = cluster["store"]
    pairs = [
        (
            f"Big {i}",
            f"Small {i}",
            set(add_bulk(store, f"Big {i}", BIG, 500 + i)),
            set(add_bulk(store, f"Small {i}", 5, 600 + i)),
        )
        for i in range(3)
    ]
    until(lambda: all(names(s).get(big) == BIG for s in (a, b) for big, *_ in pairs), 5.0)
    seen: list[str] = []
    halves: list[tuple] = []
    stop = threading.Event()

    def watch(big: str, small: str, big_ids: set[str], small_ids: set[str]) -> None:
        while not stop.is_set():
            listed = names(b)
            state = (listed.get(big), listed.get(small))
            if state == (BIG, 5):
                seen.append("old")
            elif state == (None, BIG + 5):
                seen.append("new")
            else:
                halves.append(("GET /identities", state))
            shown_big, shown_small = faces(b, big), faces(b, small)
            if shown_big not in (big_ids, None) or shown_small not in (small_ids, big_ids | small_ids):
                halves.append(("GET /identities/{name}", len(shown_big or ()), len(shown_small or ())))

    for big, small, big_ids, small_ids in pairs:
        seen.clear()
        stop.clear()
        watcher = threading.Thread(target=watch, args=(big, small, big_ids, small_ids))
        watcher.start()
        try:
            until(lambda: "old" in seen, 5.0)
            answer = post(a, f"/identities/{big}/merge", {"into": small})
            assert answer.status_code == 200, answer.text
            assert answer.json()["faces"] == BIG + 5 and set(answer.json()["moved"]) == big_ids
            assert until(lambda: names(b).get(small) == BIG + 5 and big not in names(b), 1.0) < 1.0
            until(lambda: seen[-1:] == ["new"], 1.0)
        finally:
            stop.set()
            watcher.join()
        assert halves == [], halves[:5]
        assert faces(b, small) == big_ids | small_ids and faces(b, big) is None
        assert stored(cluster["url"])[small] == big_ids | small_ids


def _burst(server: Server, steps: list[tuple[str, str, dict]], statuses: dict[str, int]) -> None:
    """The steps in order until the server stops answering (the one then in flight: -1)."""
    for key, path, body in steps:
        try:
            statuses[key] = post(server, path, body).status_code
        except requests.RequestException:
            statuses[key] = -1
            return


def test_a_replica_killed_during_a_curation_burst_loses_nothing_acknowledged(cluster):
    a, b = cluster["apis"]
    store, url = cluster["store"], cluster["url"]
    n = 40
    before: dict[str, set[str]] = {}
    for i in range(n):
        before[f"Src {i}"] = set(add_bulk(store, f"Src {i}", 10, 1000 + i))
        before[f"Dst {i}"] = set(add_bulk(store, f"Dst {i}", 10, 2000 + i))
    until(lambda: all(names(s).get(f"Dst {n - 1}") == 10 for s in (a, b)), 5.0)
    steps: list[tuple[str, str, dict]] = []
    for i in range(n):
        face = min(before[f"Dst {i}"])
        steps += [
            (f"merge {i}", f"/identities/Src%20{i}/merge", {"into": f"Dst {i}"}),
            (f"move {i}", f"/identities/Dst%20{i}/faces/{face}/move", {"to": f"Moved {i}"}),
            (f"rename {i}", f"PATCH /identities/Dst%20{i}", {"name": f"Renamed {i}"}),
        ]
    statuses: dict[str, int] = {}
    writer = threading.Thread(target=_burst, args=(a, steps, statuses))
    writer.start()
    until(lambda: len(statuses) >= 12, 60.0)
    a.proc.kill()  # SIGKILL, while it answers the burst: no shutdown of any kind
    a.proc.wait(timeout=10)
    writer.join()
    acknowledged = {key for key, status in statuses.items() if status == 200}
    in_flight = [key for key, status in statuses.items() if status != 200]
    assert len(acknowledged) >= 12 and len(in_flight) == 1 and statuses[in_flight[0]] == -1, statuses

    def expected(i: int, done: set[str]) -> dict[str, set[str]]:
        src, dst = before[f"Src {i}"], before[f"Dst {i}"]
        state = {f"Src {i}": src, f"Dst {i}": dst}
        if f"merge {i}" in done:
            state = {f"Dst {i}": src | dst}
        if f"move {i}" in done:
            state[f"Dst {i}"] = state[f"Dst {i}"] - {min(dst)}
            state[f"Moved {i}"] = {min(dst)}
        if f"rename {i}" in done:
            state[f"Renamed {i}"] = state.pop(f"Dst {i}")
        return state

    def of_pair(state: dict[str, set[str]], i: int) -> dict[str, set[str]]:
        return {k: v for k, v in state.items() if k in {f"Src {i}", f"Dst {i}", f"Moved {i}", f"Renamed {i}"}}

    truth = stored(url)
    flying = int(in_flight[0].split()[1])
    for i in range(n):
        if i != flying:
            assert of_pair(truth, i) == expected(i, acknowledged), i
    # the one in flight when the replica died: whole or not at all
    assert of_pair(truth, flying) in (expected(flying, acknowledged), expected(flying, acknowledged | set(in_flight)))

    counts = {name: len(ids) for name, ids in truth.items()}
    assert until(lambda: names(b) == counts, 1.0) < 1.0  # the survivor, within a second
    assert shown(b) == truth
    restarted = cluster["launch"]("api1-restarted")
    cluster["apis"][0] = restarted
    assert shown(restarted) == truth


def test_a_replica_catching_up_on_a_merge_then_a_rename_shows_no_state_the_database_never_had(pg_url):
    """A replica that reads several entries at once (it was busy, or reconnecting) applies each
    in order; every view it publishes meanwhile must be one the database held: the merge's faces
    must not join the renamed identity while the merged-into one still stands beside it."""
    from inference_service.gallery import Gallery, curation
    from inference_service.gallery.replica import ReplicaSync

    a = Gallery.open(pg_url, EMBEDDER, DIM)
    for name, seed in (("Src", 1), ("Dst", 2)):
        records = make_records(name, 10, seed=seed)
        a.store.add_faces(records)
        a.apply_added(records)
    b = Gallery.open(pg_url, EMBEDDER, DIM)
    follower = ReplicaSync(b.store, b)  # not started: it catches up when told, all entries at once
    views: list[dict[str, int]] = []
    publish = b.index._publish

    def recorded(*args, **kwargs):
        publish(*args, **kwargs)
        views.append(dict(b.identities()))

    b.index._publish = recorded  # type: ignore[method-assign]
    try:
        with acting(WriteContext(actor=Actor("ops"))):
            curation.merge(a, "Src", "Dst")
            curation.rename(a, "Dst", "Renamed")
        follower.catch_up()
        assert dict(b.identities()) == {"Renamed": 20}
        held = [{"Src": 10, "Dst": 10}, {"Dst": 20}, {"Renamed": 20}]
        assert views and all(view in held for view in views), views
        # a merge, one of its faces moved on to a new identity, that identity erased
        other = make_records("Other", 5, seed=3)
        a.store.add_faces(other)
        a.apply_added(other)
        follower.catch_up()
        views.clear()
        with acting(WriteContext(actor=Actor("ops"))):
            curation.merge(a, "Renamed", "Other")
            curation.move_face(a, "Other", a.faces_of("Other")[-1].face_id, "Third")
            a.delete_identity("Third")
        follower.catch_up()
        assert dict(b.identities()) == dict(a.identities()) == {"Other": 24}
        held = [{"Renamed": 20, "Other": 5}, {"Other": 25}, {"Other": 24, "Third": 1}, {"Other": 24}]
        assert views and all(view in held for view in views), views
    finally:
        a.close()
        b.close()
