"""Following faces across frames, and naming a track from all of its faces.

Per-frame recognition with the dlib model labels Lin-Manuel Miranda in only about half of the
stage clip's close-up frames (his similarity to his one gallery photo wavers around the 0.926
threshold) and now and then lifts an audience member over the threshold for one frame. A track
collects a face's every appearance in a shot, so the decision can use all of them:

* linking: a detection continues the track whose last box it overlaps most (IoU, or a nearby
  centre at a similar size) when their embeddings also agree; without overlap it may re-attach to a recently lost track only on an
  embedding match at the recognition threshold. A shot cut ends every track.
* naming: per identity, the mean of the track's best half of frame similarities (at least
  ``min_top`` of them). That ignores the frames where the head is turned but, unlike the best
  single frame, cannot be won by one lucky frame. The best identity must reach the threshold and
  lead the runner-up by ``margin``; short tracks (fewer than ``min_faces`` faces) stay unnamed.
  The track's template (templates.py: the quality-weighted mean of its embeddings) may name it
  too, against its own calibrated threshold; a track the two rules disagree on stays unnamed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..engine import iou


@dataclass
class Detection:
    """One face in one analysed frame, with its gallery candidates (identity -> similarity).

    ``landmarks`` (5 x 2) and ``sharpness`` (:func:`quality.sharpness`) weigh the face in its
    track's template, and with ``brightness`` decide whether it may be enrolled; a matcher that
    cannot give them (the API's) leaves them None.
    """

    frame: int
    box: tuple[float, float, float, float]
    score: float
    embedding: np.ndarray | None
    candidates: dict[str, float] = field(default_factory=dict)
    landmarks: np.ndarray | None = None
    sharpness: float | None = None
    brightness: float | None = None


@dataclass
class Track:
    track_id: int
    detections: list[Detection] = field(default_factory=list)
    missed: int = 0  # analysed frames since the last detection

    @property
    def last(self) -> Detection:
        return self.detections[-1]

    def signature(self, window: int = 5) -> np.ndarray | None:
        """Mean of the last few embeddings: steadier than the last one alone."""
        vectors = [d.embedding for d in self.detections[-window:] if d.embedding is not None]
        if not vectors:
            return None
        mean = np.mean(vectors, axis=0)
        return mean / max(float(np.linalg.norm(mean)), 1e-12)


def proximity(a: Sequence[float], b: Sequence[float], max_scale: float = 1.5) -> float:
    """1 for boxes with one centre, falling to 0 at a centre distance of one box width; 0 when
    their sizes differ by more than ``max_scale`` (a near face and a far one are not one track)."""
    wa, wb = a[2] - a[0], b[2] - b[0]
    if wa <= 0 or wb <= 0 or max(wa, wb) / min(wa, wb) > max_scale:
        return 0.0
    dx = (a[0] + a[2] - b[0] - b[2]) / 2
    dy = (a[1] + a[3] - b[1] - b[3]) / 2
    return max(0.0, 1.0 - math.hypot(dx, dy) / ((wa + wb) / 2))


@dataclass(frozen=True)
class TrackerConfig:
    """Linking rules. Similarities are cosines of the embedder in use."""

    link_similarity: float  # embeddings must agree at least this much to link overlapping boxes
    reid_similarity: float  # enough on its own to re-attach a face that lost overlap
    iou_min: float = 0.3  # overlap between consecutive analysed frames of one moving face
    # or a box of about the same size whose centre moved less than half its width: a face that
    # moves fast (a singer's head, every 6th frame) can fall under the IoU bar
    proximity_min: float = 0.5
    max_missed: int = 5  # analysed frames a track survives unseen (a blink of the detector)

    @classmethod
    def for_threshold(cls, threshold: float, max_missed: int = 5) -> TrackerConfig:
        # Within one shot the same face in frames a tenth of a second apart scores far above the
        # recognition threshold; two different people rarely reach threshold - 0.05 with dlib
        # (the stage clip's audience pairs stay below 0.9). Re-identification without overlap
        # needs the full threshold.
        return cls(link_similarity=threshold - 0.05, reid_similarity=threshold, max_missed=max_missed)


class Tracker:
    """Greedy-optimal (Hungarian) frame-to-frame association of detections to live tracks."""

    def __init__(self, config: TrackerConfig) -> None:
        self.config = config
        self.active: list[Track] = []
        self.finished: list[Track] = []
        self._next_id = 1

    def cut(self) -> None:
        """A shot boundary: nobody continues across it."""
        self.finished.extend(self.active)
        self.active = []

    def update(self, detections: Sequence[Detection]) -> None:
        from scipy.optimize import linear_sum_assignment

        cfg = self.config
        tracks = self.active
        matched_tracks: set[int] = set()
        matched_dets: set[int] = set()
        if tracks and detections:
            cost = np.full((len(tracks), len(detections)), np.inf)
            for t, track in enumerate(tracks):
                signature = track.signature()
                for d, det in enumerate(detections):
                    overlap = iou(track.last.box, det.box)
                    near = proximity(track.last.box, det.box)
                    sim = None
                    if signature is not None and det.embedding is not None:
                        sim = float(signature @ det.embedding)
                    close = overlap >= cfg.iou_min or near >= cfg.proximity_min
                    if close and (sim is None or sim >= cfg.link_similarity):
                        cost[t, d] = -(overlap + near + (sim if sim is not None else 0.0))
                    elif sim is not None and sim >= cfg.reid_similarity:
                        cost[t, d] = -sim
            finite = np.where(np.isfinite(cost), cost, 1e6)
            rows, cols = linear_sum_assignment(finite)
            for t, d in zip(rows, cols):
                if np.isfinite(cost[t, d]):
                    tracks[t].detections.append(detections[d])
                    tracks[t].missed = 0
                    matched_tracks.add(t)
                    matched_dets.add(d)
        still: list[Track] = []
        for t, track in enumerate(tracks):
            if t not in matched_tracks:
                track.missed += 1
                if track.missed > cfg.max_missed:
                    self.finished.append(track)
                    continue
            still.append(track)
        for d, det in enumerate(detections):
            if d not in matched_dets:
                still.append(Track(self._next_id, [det]))
                self._next_id += 1
        self.active = still

    def close(self) -> list[Track]:
        """All tracks, ordered by their first frame."""
        self.cut()
        return sorted(self.finished, key=lambda t: (t.detections[0].frame, t.track_id))


@dataclass(frozen=True)
class Decision:
    identity: str | None
    similarity: float  # aggregated similarity of the best identity (0 when no candidates)
    runner_up: tuple[str, float] | None
    # The track template's best identity and score (templates.py), when the track had one.
    template: tuple[str, float] | None = None
    # What each rule alone would name (None: nobody); ``identity`` is None when they disagree.
    by_frames: str | None = None
    by_template: str | None = None

    @property
    def score(self) -> float:
        """The similarity behind the name: the template's when only the template named the track."""
        if self.identity is not None and self.by_frames is None and self.template is not None:
            return self.template[1]
        return self.similarity


def aggregate(values: Sequence[float], min_top: int = 3, top_fraction: float = 0.5) -> float:
    """Mean of the best ``max(min_top, top_fraction * n)`` values (all of them when fewer)."""
    ordered = sorted(values, reverse=True)
    k = min(len(ordered), max(min_top, math.ceil(top_fraction * len(ordered))))
    return float(np.mean(ordered[:k])) if k else 0.0


def _template_winner(
    scores: Mapping[str, float], threshold: float, margin: float
) -> tuple[str | None, tuple[str, float] | None]:
    """The template's accepted identity (or None) and its best (identity, score)."""
    if not scores:
        return None, None
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    best, score = ranked[0]
    runner = ranked[1][1] if len(ranked) > 1 else -1.0
    accepted = best if score >= threshold and score - runner >= margin else None
    return accepted, (best, round(float(score), 4))


def decide_identity(
    detections: Sequence[Detection],
    threshold: float,
    margin: float = 0.02,
    min_faces: int = 3,
    min_top: int = 3,
    top_fraction: float = 0.5,
    template: Mapping[str, float] | None = None,
    track_threshold: float | None = None,
    template_margin: float | None = None,
) -> Decision:
    """One identity (or None) for a whole track.

    Two rules, either of which may name the track, and a track they disagree on stays unnamed:

    * frames: a face's candidates are its top-k gallery identities. For an identity missing from
      one face's list the best case is that face's lowest listed similarity and the worst case is
      -1: the winner is scored on the worst case and the runner-up on the best case, so a short
      candidate list can only make the decision stricter.
    * template (``template``: identity -> score of the track's template, templates.py): the best
      identity must reach ``track_threshold`` (default ``threshold``) and lead the next by
      ``template_margin`` (default ``margin``).

    Either way a track of fewer than ``min_faces`` faces stays unnamed.
    """
    names = sorted({name for det in detections for name in det.candidates})
    long_enough = len(detections) >= min_faces
    by_template, template_best = _template_winner(
        template or {},
        threshold if track_threshold is None else track_threshold,
        margin if template_margin is None else template_margin,
    )
    if not long_enough:
        by_template = None
    if not names:
        return Decision(by_template, 0.0, None, template_best, None, by_template)
    pessimistic: dict[str, float] = {}
    optimistic: dict[str, float] = {}
    for name in names:
        worst = [det.candidates.get(name, -1.0) for det in detections]
        best_case = [det.candidates.get(name, min(det.candidates.values(), default=-1.0)) for det in detections]
        pessimistic[name] = aggregate(worst, min_top, top_fraction)
        optimistic[name] = aggregate(best_case, min_top, top_fraction)
    best = max(names, key=lambda n: (pessimistic[n], n))
    others = [n for n in names if n != best]
    runner = max(others, key=lambda n: (optimistic[n], n)) if others else None
    score = pessimistic[best]
    runner_score = optimistic[runner] if runner else -1.0
    accepted = long_enough and score >= threshold and score - runner_score >= margin
    by_frames = best if accepted else None
    if by_frames and by_template and by_frames != by_template:
        identity = None  # the two rules name different people: say nothing
    else:
        identity = by_frames or by_template
    return Decision(
        identity,
        round(score, 4),
        (runner, round(runner_score, 4)) if runner else None,
        template_best,
        by_frames,
        by_template,
    )


def track_boxes(track: Track, max_gap: int) -> dict[int, tuple[float, float, float, float]]:
    """Box of the track in every frame it covers: its detections, and linear interpolation
    between consecutive detections at most ``max_gap`` frames apart (the frames skipped by the
    analysis stride, or a detector miss)."""
    out: dict[int, tuple[float, float, float, float]] = {}
    dets = track.detections
    for a, b in zip(dets, dets[1:]):
        out[a.frame] = a.box
        gap = b.frame - a.frame
        if 1 < gap <= max_gap:
            for f in range(a.frame + 1, b.frame):
                w = (f - a.frame) / gap
                out[f] = tuple(float((1 - w) * p + w * q) for p, q in zip(a.box, b.box))  # type: ignore[assignment]
    out[dets[-1].frame] = dets[-1].box
    return dict(sorted(out.items()))
