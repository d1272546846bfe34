"""The event log over both stores (SQLite beside the gallery, PostgreSQL beside a PG gallery):
paging and filters, resuming after an id, erasing a person under any spelling of their name with
their crops, retention, and no crop of unknown faces when the setting says so."""

from __future__ import annotations

import numpy as np
import pytest

from inference_service.analysis.live import TrackEvent
from inference_service.config import Settings
from inference_service.events.service import EventLog, open_event_store
from inference_service.events.store import EventFilter

FACE = np.full((40, 30, 3), 128, dtype=np.uint8)


@pytest.fixture(params=["sqlite", "postgres"])
def log(request, tmp_path):
    gallery = str(tmp_path / "gallery.sqlite3") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    settings = Settings(gallery=gallery)
    events = EventLog(open_event_store(settings), retention_days=1, unknown_faces=False)
    yield events
    events.close()


def told(kind, identity, at, track=1, previous=None):
    return TrackEvent(kind, track, identity, 0.95 if identity else 0.4, at, 2.5, previous=previous, face=FACE)


def test_events_are_paged_filtered_and_resumed(log):
    t0 = 1_900_000_000.0
    seen = []
    log.subscribers.append(seen.append)
    stored = log.record("door", [told("appeared", "Ada", t0), told("appeared", None, t0 + 1, track=2)])
    stored += log.record("hall", [told("left", "Ada", t0 + 2)])
    stored += log.record("door", [told("named", "Bob", t0 + 3, track=2)])
    assert [e["id"] for e in seen] == [e["id"] for e in stored] and len(stored) == 4
    first = log.page(EventFilter(), 2)
    assert [e["type"] for e in first] == ["named", "left"]  # newest first
    second = log.page(EventFilter(before_id=first[-1]["id"]), 2)
    assert [e["type"] for e in second] == ["appeared", "appeared"]
    assert log.page(EventFilter(camera="door"), 10)[0]["identity"] == "Bob"
    assert [e["type"] for e in log.page(EventFilter(identity="ada"), 10)] == ["left", "appeared"]  # name key
    assert [e["identity"] for e in log.page(EventFilter(type="appeared", since=t0 + 0.5), 10)] == [None]
    assert log.page(EventFilter(until=t0 + 0.5), 10)[0]["at"] == "2030-03-17T17:46:40.000Z"
    after = log.after(stored[1]["id"])
    assert [e["id"] for e in after] == [stored[2]["id"], stored[3]["id"]]  # every later one, in order
    assert log.latest_id() == stored[3]["id"]
    # FACE_EVENT_UNKNOWN_FACES=0: the unknown face's crop is not kept; a named one's is, as a JPEG
    unknown = next(e for e in stored if e["identity"] is None)
    assert unknown["face"] is None and log.face(unknown["id"]) is None
    assert log.face(stored[0]["id"])[:2] == b"\xff\xd8"


def test_erasing_a_person_erases_their_events_and_crops(log):
    t0 = 1_900_000_000.0
    stored = log.record(
        "door",
        [told("appeared", "Ada", t0), told("renamed", "Bob", t0 + 1, previous="Ada"), told("appeared", "Cy", t0 + 2)],
    )
    assert log.erase_identity("ADA") == 2  # her own and the rename that named her
    assert [e["identity"] for e in log.page(EventFilter(), 10)] == ["Cy"]
    assert log.face(stored[0]["id"]) is None


def test_retention_removes_old_events(log):
    now = 1_900_000_000.0
    log.record("door", [told("appeared", "Ada", now - 2 * 86400), told("appeared", "Bob", now - 3600)])
    assert log.sweep(now=now) == 1  # retention_days=1
    assert [e["identity"] for e in log.page(EventFilter(), 10)] == ["Bob"]


class Holds:
    """A gallery as the sweeper sees it: who it still holds."""

    def __init__(self, *names: str) -> None:
        self.names = {n.casefold() for n in names}

    def faces_of(self, name: str):
        return [object()] if name.casefold() in self.names else None


def test_a_renamed_person_keeps_their_events_and_an_erased_one_loses_them(log):
    t0 = 1_900_000_000.0
    log.record("door", [told("appeared", "Ada", t0), told("renamed", "Bob", t0 + 1, previous="Ada")])
    log.record("door", [told("appeared", "Cy", t0 + 2)])
    log.follow_identity("ADA", "Ada Lovelace")  # renamed in the gallery (curation)
    assert [(e["identity"], e["previous"]) for e in log.page(EventFilter(identity="ada lovelace"), 10)] == [
        ("Ada Lovelace", None)
    ]
    assert log.page(EventFilter(type="renamed"), 10)[0]["previous"] == "Ada Lovelace"
    log.gallery = Holds("Ada Lovelace", "Bob")  # Cy was erased elsewhere (expiry, another replica)
    assert log.erase_the_forgotten() == 1
    assert sorted(e["identity"] for e in log.page(EventFilter(), 10)) == ["Ada Lovelace", "Bob"]
    assert log.erase_the_forgotten() == 0
