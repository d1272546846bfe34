"""Live video: frames that never end, each answered with the faces in it and their tracks' names.

A :class:`LiveSession` is the video jobs' analysis run one frame at a time: the same matcher
(:class:`~.matcher.EngineMatcher`), the same :class:`~.tracking.Tracker` and the same naming rule
(:func:`~.templates.name_track`: frames and track template), so a face on a camera is named as
it would be in an uploaded video. What live video adds:

* **naming once decided**: a track is *decided* once it has ``min_faces`` faces, named or unknown.
  A decided name stays while later frames merely fail to confirm it (a turned head); only a
  decision for *another* identity replaces it (``renamed``). An unknown track that the evidence
  later names is ``named``. Each such change is a :class:`TrackEvent` the caller may store.
* **people, not tracks, appear and leave**: a named person whose track is lost and found again
  (a turn, an occlusion, the tracker losing a fast face) is still the same visit. While a track of
  theirs is in view, or one ended less than ``left_grace_s`` ago, a new track decided as them
  tells nothing; ``left`` is told once none of their tracks has been seen for ``left_grace_s``,
  with the time of the whole visit. An unknown face cannot be recognised again, so its track
  appears and leaves on its own.
* **bounded memory**: a track keeps its last :data:`MAX_TRACK_FACES` faces (a person in view for
  an hour must not grow a list without end), and finished tracks are forgotten.
* **latest wins**: :class:`LatestSlot` holds at most one waiting frame; a newer frame replaces it
  and the replaced one counts as dropped. Analysis never queues behind the camera.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import numpy as np

from .templates import name_track
from .tracking import Track, Tracker, TrackerConfig

# The naming rule looks at a track's best half of faces; 64 recent faces is several seconds of
# analysed video at live rates, enough for the decision and a bound on memory per person in view.
MAX_TRACK_FACES = 64

EventType = Literal["appeared", "named", "renamed", "left"]
T = TypeVar("T")


@dataclass(frozen=True)
class LiveFace:
    """One face in the frame just analysed, as the WebSocket and the cameras report it."""

    box: tuple[float, float, float, float]
    track_id: int
    identity: str | None
    similarity: float
    decided: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "box": [round(float(v), 1) for v in self.box],
            "track_id": self.track_id,
            "identity": self.identity,
            "similarity": round(float(self.similarity), 4),
            "decided": self.decided,
        }


@dataclass(frozen=True)
class TrackEvent:
    """A change worth telling: a decided track appeared, was named or renamed, or left view."""

    type: EventType
    track_id: int
    identity: str | None
    similarity: float
    at: float  # wall-clock time (time.time())
    seconds_in_view: float = 0.0
    previous: str | None = None  # the identity a ``renamed`` replaced
    face: Any = None  # the best face's crop (an RGB array) when the session keeps crops


@dataclass
class _TrackState:
    first_seen: float
    identity: str | None = None
    similarity: float = 0.0
    decided: bool = False
    best_crop: np.ndarray | None = None
    best_area: float = 0.0


@dataclass
class _Presence:
    """A named person's visit: the tracks of theirs in view, since when, and since when none."""

    first_seen: float
    tracks: set[int]
    track_id: int
    similarity: float
    crop: np.ndarray | None = None
    crop_area: float = 0.0
    gone_since: float | None = None


@dataclass
class LiveResult:
    faces: list[LiveFace]
    events: list[TrackEvent] = field(default_factory=list)
    seconds: float = 0.0  # time spent analysing this frame


class LiveSession:
    """One stream's tracker and naming state. Not thread-safe: one frame at a time per session.

    ``keep_crops``: remember each track's largest face so events can carry it (the cameras'
    event store does; the browser's WebSocket does not need it).
    """

    def __init__(
        self,
        matcher,
        *,
        margin: float = 0.02,
        min_faces: int = 3,
        max_missed: int = 5,
        keep_crops: bool = False,
        left_grace_s: float = 3.0,
    ) -> None:
        self.matcher = matcher
        self.margin = margin
        self.min_faces = min_faces
        self.keep_crops = keep_crops
        self.tracker = Tracker(TrackerConfig.for_threshold(matcher.threshold, max_missed=max_missed))
        self.frames = 0
        self.left_grace_s = left_grace_s
        self._states: dict[int, _TrackState] = {}
        self._present: dict[str, _Presence] = {}

    def analyse(self, rgb: np.ndarray, now: float | None = None, original: np.ndarray | None = None) -> LiveResult:
        """Detect, track and name the faces of one RGB frame. ``original``: the full-size frame
        ``rgb`` was downscaled from, where the kept face crops are cut (boxes stay in ``rgb``'s
        pixels)."""
        started = time.perf_counter()
        now = time.time() if now is None else now
        index = self.frames
        self.frames += 1
        detections = self.matcher.analyze([rgb], [index])[0]
        self.tracker.update(detections)
        events: list[TrackEvent] = []
        faces: list[LiveFace] = []
        for track in self.tracker.active:
            if len(track.detections) > MAX_TRACK_FACES:
                del track.detections[: len(track.detections) - MAX_TRACK_FACES]
            state = self._states.setdefault(track.track_id, _TrackState(first_seen=now))
            seen_now = track.missed == 0 and track.last.frame == index
            if seen_now and self.keep_crops:
                scale = original.shape[1] / rgb.shape[1] if original is not None else 1.0
                full = original if original is not None else rgb
                x1, y1, x2, y2 = (v * scale for v in track.last.box)
                self._keep_best(state, full, (x1, y1, x2, y2))
            events.extend(self._decide(track, state, now))
            if seen_now:
                faces.append(LiveFace(track.last.box, track.track_id, state.identity, state.similarity, state.decided))
        events.extend(self._left(now))
        return LiveResult(faces, events, time.perf_counter() - started)

    def close(self, now: float | None = None) -> list[TrackEvent]:
        """The stream ended: everyone in view leaves, now."""
        now = time.time() if now is None else now
        self.tracker.cut()
        return self._left(now, final=True)

    def present(self) -> list[LiveFace]:
        """Decided tracks in view now (the "who is here" of a camera)."""
        out = []
        for track in self.tracker.active:
            state = self._states.get(track.track_id)
            if state is not None and state.decided:
                out.append(LiveFace(track.last.box, track.track_id, state.identity, state.similarity, True))
        return out

    # ------------------------------------------------------------------------------------------
    def _decide(self, track: Track, state: _TrackState, now: float) -> list[TrackEvent]:
        decision = name_track(
            track.detections,
            self.matcher.threshold,
            getattr(self.matcher, "track_threshold", self.matcher.threshold),
            getattr(self.matcher, "template_candidates", None),
            margin=self.margin,
            min_faces=self.min_faces,
        )
        if not state.decided:
            if len(track.detections) < self.min_faces:
                return []
            state.decided = True
            state.identity, state.similarity = decision.identity, decision.similarity
            if state.identity is not None and self._join(track, state):
                return []  # the same visit as a track of theirs just lost
            return [self._event("appeared", track, state, now)]
        if decision.identity == state.identity:
            state.similarity = decision.similarity
            self._update_presence(track, state)
            return []
        if decision.identity is None:
            return []  # not confirming a name is no evidence against it
        previous = state.identity
        if previous is not None:
            self._part(previous, track.track_id, now, forget=True)  # the earlier name was wrong
        state.identity, state.similarity = decision.identity, decision.similarity
        if self._join(track, state) and previous is None:
            return []
        return [self._event("named" if previous is None else "renamed", track, state, now, previous=previous)]

    def _join(self, track: Track, state: _TrackState) -> bool:
        """Count the named track in its person's visit; True when the visit was already told."""
        assert state.identity is not None
        visit = self._present.get(state.identity)
        if visit is None:
            self._present[state.identity] = _Presence(
                state.first_seen, {track.track_id}, track.track_id, state.similarity
            )
            self._update_presence(track, state)
            return False
        visit.tracks.add(track.track_id)
        visit.gone_since = None
        state.first_seen = min(state.first_seen, visit.first_seen)
        self._update_presence(track, state)
        return True

    def _update_presence(self, track: Track, state: _TrackState) -> None:
        visit = self._present.get(state.identity) if state.identity else None
        if visit is None:
            return
        visit.track_id, visit.similarity = track.track_id, state.similarity
        if state.best_crop is not None and state.best_area > visit.crop_area:
            visit.crop, visit.crop_area = state.best_crop, state.best_area

    def _part(self, identity: str, track_id: int, now: float, forget: bool = False) -> None:
        visit = self._present.get(identity)
        if visit is None:
            return
        visit.tracks.discard(track_id)
        if not visit.tracks:
            if forget:
                del self._present[identity]
            elif visit.gone_since is None:
                visit.gone_since = now

    def _left(self, now: float, final: bool = False) -> list[TrackEvent]:
        events = []
        for track in self.tracker.finished:
            state = self._states.pop(track.track_id, None)
            if state is None or not state.decided:
                continue
            if state.identity is None:
                events.append(self._event("left", track, state, now))
            else:
                self._part(state.identity, track.track_id, now)
        self.tracker.finished.clear()
        for identity, visit in list(self._present.items()):
            if visit.tracks or visit.gone_since is None:
                continue
            if final or now - visit.gone_since >= self.left_grace_s:
                del self._present[identity]
                seconds = round(visit.gone_since - visit.first_seen, 3)
                events.append(
                    TrackEvent("left", visit.track_id, identity, visit.similarity, now, seconds, face=visit.crop)
                )
        return events

    def _event(
        self, kind: EventType, track: Track, state: _TrackState, now: float, previous: str | None = None
    ) -> TrackEvent:
        return TrackEvent(
            kind,
            track.track_id,
            state.identity,
            state.similarity,
            now,
            seconds_in_view=round(now - state.first_seen, 3),
            previous=previous,
            face=state.best_crop,
        )

    def _keep_best(self, state: _TrackState, rgb: np.ndarray, box: tuple[float, float, float, float]) -> None:
        area = max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])
        if area <= state.best_area:
            return
        h, w = rgb.shape[:2]
        pad_x, pad_y = 0.25 * (box[2] - box[0]), 0.25 * (box[3] - box[1])
        x1, y1 = max(0, int(box[0] - pad_x)), max(0, int(box[1] - pad_y))
        x2, y2 = min(w, int(box[2] + pad_x)), min(h, int(box[3] + pad_y))
        if x2 > x1 and y2 > y1:
            state.best_crop = rgb[y1:y2, x1:x2].copy()
            state.best_area = area


class LatestSlot(Generic[T]):
    """At most one waiting item; a newer one replaces it (latest wins) and the older is counted
    as dropped. Safe to use from several threads; ``put`` and ``take`` never block."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._item: T | None = None
        self._dropped = 0
        self.dropped_total = 0

    def put(self, item: T) -> None:
        with self._lock:
            if self._item is not None:
                self._dropped += 1
                self.dropped_total += 1
            self._item = item
            self._lock.notify()

    def take(self, timeout: float | None = 0.0) -> T | None:
        """The waiting item (and empty the slot), waiting up to ``timeout`` s for one (None: forever)."""
        with self._lock:
            if self._item is None and timeout != 0.0:
                self._lock.wait_for(lambda: self._item is not None, timeout)
            item, self._item = self._item, None
            return item

    def dropped_since_last(self) -> int:
        """Items dropped since the previous call."""
        with self._lock:
            n, self._dropped = self._dropped, 0
            return n
