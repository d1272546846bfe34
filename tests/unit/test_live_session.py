"""Live sessions without models: naming once decided, events, the latest-wins slot, tickets.

The matcher here is scripted (each frame's faces and candidates given by the test), so the rules
of :mod:`inference_service.analysis.live` are checked exactly; the real models and the stage clip
are in tests/integration/test_live_ws.py.
"""

from __future__ import annotations

import threading

import numpy as np

from inference_service.analysis.live import MAX_TRACK_FACES, LatestSlot, LiveSession
from inference_service.analysis.tracking import Detection
from inference_service.api import live_tickets

THRESHOLD = 0.9
BOX = (100.0, 100.0, 160.0, 170.0)


class ScriptedMatcher:
    """Answers each frame with the next scripted list of ``(box, candidates)``; one fixed embedding
    per face so the tracker links a face to itself."""

    threshold = THRESHOLD
    embedder = "scripted"
    source = "test"

    def __init__(self, script: list[list[tuple[tuple[float, float, float, float], dict[str, float]]]]) -> None:
        self.script = list(script)
        self.vector = np.ones(4, dtype=np.float32) / 2.0

    def analyze(self, frames, indices):
        faces = self.script.pop(0)
        out = []
        for box, cands, *vector in faces:  # an embedding of its own where the test gives one
            out.append(Detection(indices[0], box, 0.99, vector[0] if vector else self.vector, dict(cands)))
        return [out]


def run(script, **kwargs):
    session = LiveSession(ScriptedMatcher(script), **kwargs)
    frame = np.zeros((240, 320, 3), dtype=np.uint8)
    return session, [session.analyse(frame, now=float(t)) for t in range(len(script))]


def test_a_track_is_decided_after_min_faces_and_keeps_its_name_when_not_confirmed():
    ada = [(BOX, {"ada": 0.95})]
    turned = [(BOX, {"ada": 0.5})]  # the head turned: far below the threshold
    session, results = run([ada, ada, ada] + [turned] * 6, min_faces=3)
    first, third = results[0].faces[0], results[2].faces[0]
    assert (first.decided, first.identity) == (False, None)
    assert (third.decided, third.identity) == (True, "ada")
    assert [e.type for e in results[2].events] == ["appeared"] and results[2].events[0].identity == "ada"
    # the best half of the faces falls below the threshold: no longer a decision for ada, but the
    # name stays (not confirming is no evidence against it) and no event is told
    assert all(r.faces[0].identity == "ada" and r.faces[0].track_id == first.track_id for r in results[3:])
    assert all(not r.events for r in results[3:])


def test_an_unknown_track_named_later_and_a_name_overturned_are_events():
    stranger = [(BOX, {"bob": 0.5})]
    bob = [(BOX, {"bob": 0.99})]
    carl = [(BOX, {"carl": 0.99, "bob": 0.1})]
    _, results = run([stranger] * 3 + [bob] * 6 + [carl] * 16, min_faces=3)
    events = [e for r in results for e in r.events]
    assert [(e.type, e.identity) for e in events] == [("appeared", None), ("named", "bob"), ("renamed", "carl")]
    assert events[2].previous == "bob"


def test_a_track_that_leaves_is_told_once_with_its_time_in_view_and_forgotten():
    ada = [(BOX, {"ada": 0.95})]
    session, results = run([ada] * 4 + [[]] * 7, min_faces=3, max_missed=2)
    left = [e for r in results for e in r.events if e.type == "left"]
    assert len(left) == 1 and left[0].identity == "ada"
    assert left[0].seconds_in_view == 6.0  # first seen at t=0, gone after two missed frames (t=6)
    assert session.present() == [] and not session._states
    assert not any(r.faces for r in results[4:])


def test_a_short_glimpse_is_never_decided_nor_told():
    _, results = run([[(BOX, {"ada": 0.99})]] * 2 + [[]] * 8, min_faces=3, max_missed=2)
    assert not any(r.events for r in results)


def test_a_track_keeps_a_bounded_number_of_faces():
    session, _ = run([[(BOX, {"ada": 0.95})]] * (MAX_TRACK_FACES + 20))
    assert len(session.tracker.active[0].detections) == MAX_TRACK_FACES


def test_keep_crops_remembers_the_largest_face_for_the_event():
    small = (10.0, 10.0, 30.0, 30.0)
    big = (12.0, 12.0, 40.0, 40.0)
    session = LiveSession(ScriptedMatcher([[(small, {"ada": 0.95})], [(big, {"ada": 0.95})]] * 2), keep_crops=True)
    frame = np.zeros((100, 100, 3), dtype=np.uint8)
    events = [e for t in range(4) for e in session.analyse(frame, now=float(t)).events]
    assert events[0].type == "appeared" and events[0].face.shape == (42, 42, 3)  # 28 px + a quarter each side


def test_latest_slot_keeps_the_newest_and_counts_the_dropped():
    slot: LatestSlot[int] = LatestSlot()
    assert slot.take() is None
    for k in range(5):
        slot.put(k)
    assert slot.take() == 4 and slot.take() is None
    assert slot.dropped_since_last() == 4 and slot.dropped_since_last() == 0
    got = []
    waiter = threading.Thread(target=lambda: got.append(slot.take(timeout=5)))
    waiter.start()
    slot.put(7)
    waiter.join(5)
    assert got == [7] and slot.dropped_total == 4


def test_tickets_expire_and_cannot_be_forged():
    ticket = live_tickets.issue("read-key", 60, now=1000)
    assert live_tickets.valid("read-key", ticket, now=1059)
    assert not live_tickets.valid("read-key", ticket, now=1061)
    assert not live_tickets.valid("other-key", ticket, now=1000)
    expires, nonce, signature = ticket.split(".")
    assert not live_tickets.valid("read-key", f"{int(expires) + 3600}.{nonce}.{signature}", now=1000)
    assert not live_tickets.valid("read-key", "garbage", now=1000)
    assert live_tickets.from_protocols(["faces.live", "ticket." + ticket]) == ticket
    assert live_tickets.from_protocols(["faces.live"]) is None


def test_a_person_found_again_by_a_new_track_is_one_visit_told_once():
    ada = [(BOX, {"ada": 0.95})]
    far = (400.0, 300.0, 460.0, 370.0)  # the face jumped: no overlap, so a new track
    turned = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)  # the turned head embeds elsewhere: no re-id
    ada_far = [(far, {"ada": 0.95}, turned)]
    script = [ada] * 4 + [ada_far] * 6 + [[]] * 12
    session, results = run(script, min_faces=3, max_missed=2, left_grace_s=3.0)
    events = [(e.type, e.identity, e.at) for r in results for e in r.events]
    track_ids = {f.track_id for r in results for f in r.faces}
    assert len(track_ids) == 2  # the tracker saw two tracks ...
    assert [e[:2] for e in events] == [("appeared", "ada"), ("left", "ada")]  # ... the events one visit
    left = [e for r in results for e in r.events if e.type == "left"][0]
    # last seen at t=9, her track ended at t=12 (two missed frames), left told 3 s later
    assert left.at == 15.0 and left.seconds_in_view == 12.0
    assert all(r.faces[0].identity == "ada" for r in results[6:10])  # the new track is named at once


def test_crops_come_from_the_original_when_a_downscaled_copy_is_analysed():
    box = (10.0, 10.0, 30.0, 30.0)  # in the half-size copy
    session = LiveSession(ScriptedMatcher([[(box, {"ada": 0.95})]] * 3), keep_crops=True)
    small, original = np.zeros((50, 50, 3), np.uint8), np.zeros((100, 100, 3), np.uint8)
    events = [e for t in range(3) for e in session.analyse(small, now=float(t), original=original).events]
    assert events[0].face.shape == (60, 60, 3)  # 40 px in the original + a quarter each side
