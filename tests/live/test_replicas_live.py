"""Several real API processes on one real PostgreSQL gallery, as behind a load balancer.

Enroll on one and the others list and recognise the person within a second; delete on another
and it is gone everywhere; a replica killed with SIGKILL during a burst of writes on another, or
started late, holds every write that got a 201; PostgreSQL restarted during writes gives only
201 or 503, reads go on from memory meanwhile, and every replica catches up afterwards.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from support.live_servers import Server, start_api

POLL_S = "2"


def enroll(server: Server, name: str, photo: Path, retry_after: list[str] | None = None) -> int:
    with open(photo, "rb") as fh:
        answer = requests.post(
            f"{server.url}/identities/{name}/faces", files={"image": (photo.name, fh, "image/jpeg")}, timeout=120
        )
    if retry_after is not None and answer.status_code == 503:
        retry_after.append(answer.headers.get("Retry-After", ""))
    return answer.status_code


def names(server: Server) -> set[str]:
    answer = requests.get(f"{server.url}/identities", timeout=10)
    answer.raise_for_status()
    return {item["name"] for item in answer.json()["identities"]}


def health(server: Server) -> dict:
    return requests.get(f"{server.url}/health", timeout=10).json()["gallery"]


def until(condition, timeout: float) -> float:
    start = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def cluster(pg_server, faces_dir, tmp_path_factory):
    """Three API replicas on one fresh database; tests may replace or add replicas."""
    url = pg_server.create_database("replicas_live")
    logs = tmp_path_factory.mktemp("replica-logs")
    state = {"url": url, "logs": logs, "servers": []}

    def launch(name: str) -> Server:
        server = start_api(logs, url, name=name, FACE_SYNC_POLL_S=POLL_S, FACE_WORKERS="1")
        state["servers"].append(server)
        return server

    state["launch"] = launch
    with ThreadPoolExecutor(3) as pool:
        state["apis"] = list(pool.map(launch, ["api1", "api2", "api3"]))
    yield state
    for server in state["servers"]:
        server.stop()


def test_enroll_on_one_is_listed_and_recognised_by_the_others(cluster, faces_dir):
    a, b, c = cluster["apis"]
    assert enroll(a, "obama", faces_dir / "gallery/obama/1.jpg") == 201
    assert "obama" in names(a)  # read-your-writes on the replica that answered
    for other in (b, c):
        took = until(lambda: "obama" in names(other), 1.0)
        assert took < 1.0
    with open(faces_dir / "probes/obama_3.jpg", "rb") as fh:
        data = fh.read()
    for other in (b, c):
        found = requests.post(f"{other.url}/recognize", files={"image": ("p.jpg", data, "image/jpeg")}, timeout=120)
        assert found.status_code == 200
        assert [f["identity"] for f in found.json()["faces"]] == ["obama"]
    status = [health(s) for s in (a, b, c)]
    assert len({s["applied_seq"] for s in status}) == 1 and all(s["behind"] == 0 for s in status)


def test_delete_on_another_is_gone_everywhere(cluster, faces_dir):
    a, b, c = cluster["apis"]
    assert enroll(a, "kit_harington", faces_dir / "gallery/kit_harington/1.jpg") == 201
    until(lambda: "kit_harington" in names(b), 1.0)
    assert requests.delete(f"{b.url}/identities/kit_harington", timeout=30).status_code == 204
    assert "kit_harington" not in names(b)
    for other in (a, c):
        until(lambda: "kit_harington" not in names(other), 1.0)
    assert requests.get(f"{a.url}/identities/kit_harington", timeout=10).status_code == 404


def _burst(
    server: Server, prefix: str, count: int, photo: Path, statuses: dict[str, int], retry_after: list[str] | None = None
) -> None:
    for i in range(count):
        name = f"{prefix}{i}"
        try:
            statuses[name] = enroll(server, name, photo, retry_after)
        except requests.RequestException:
            statuses[name] = -1


def test_replica_killed_during_a_burst_restarts_with_every_201(cluster, faces_dir):
    a, b, c = cluster["apis"]
    statuses: dict[str, int] = {}
    writer = threading.Thread(target=_burst, args=(a, "burst", 10, faces_dir / "gallery/biden/1.jpg", statuses))
    writer.start()
    until(lambda: len(statuses) >= 3, 120)
    c.proc.kill()  # SIGKILL: no shutdown of any kind
    c.proc.wait(timeout=10)
    restarted = cluster["launch"]("api3-restarted")
    writer.join()
    cluster["apis"][2] = restarted
    committed = {n for n, s in statuses.items() if s == 201}
    assert set(statuses.values()) == {201} and len(committed) == 10
    for server in (restarted, b):
        until(lambda: committed <= names(server), 3.0)


def test_a_replica_started_late_catches_up(cluster):
    a = cluster["apis"][0]
    late = cluster["launch"]("api-late")
    try:
        assert names(late) == names(a)
        assert health(late)["applied_seq"] == health(a)["applied_seq"]
    finally:
        late.stop()


def test_postgresql_restarted_during_writes(cluster, pg_server, faces_dir):
    a, b, c = cluster["apis"]
    statuses: dict[str, int] = {}
    retry_after: list[str] = []
    writer = threading.Thread(
        target=_burst, args=(a, "outage", 12, faces_dir / "gallery/biden/2.jpg", statuses, retry_after)
    )
    writer.start()
    until(lambda: len(statuses) >= 2, 120)
    listed = names(b)
    pg_server.stop("immediate")
    try:
        # Reads go on from memory while the database is down.
        assert "outage0" in names(b) and listed <= names(b)
        until(lambda: health(b)["connected"] is False, 5.0)
        time.sleep(6.0)  # longer than the store's 5 s wait for a connection: some writes must 503
    finally:
        pg_server.start()
    writer.join()
    assert set(statuses.values()) <= {201, 503}, statuses
    assert 503 in statuses.values() and 201 in statuses.values()
    assert retry_after and all(value.isdigit() for value in retry_after)
    committed = {n for n, s in statuses.items() if s == 201}
    for server in (a, b, c):
        until(lambda: committed <= names(server) and health(server)["connected"], 10.0)
    until(lambda: names(a) == names(b) == names(c), 5.0)
    assert len({health(s)["applied_seq"] for s in (a, b, c)}) == 1
