"""The decisions inside the pipeline, on constructed inputs: naming a track, linking faces,
sampling times, face quality and the choice of faces to enroll. Fast; no models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference_service.analysis.quality import frontality
from inference_service.analysis.source import VideoInfo
from inference_service.analysis.tracking import (
    Detection,
    Track,
    Tracker,
    TrackerConfig,
    aggregate,
    decide_identity,
    track_boxes,
)
from pipeline.video.enroll import select_best
from pipeline.video.frames import sample_indices

THRESHOLD = 0.926  # dlib-resnet's


def dets(*candidate_rows: dict[str, float]) -> list[Detection]:
    return [Detection(k, (0, 0, 10, 10), 1.0, None, row) for k, row in enumerate(candidate_rows)]


def test_aggregate_is_the_mean_of_the_best_half_but_at_least_three():
    assert aggregate([0.9, 0.8, 0.7, 0.6]) == pytest.approx(0.8)  # best 3 of 4 (half is 2 < 3)
    assert aggregate([1.0] * 5 + [0.0] * 5) == pytest.approx(1.0)  # best half of 10
    assert aggregate([0.5]) == pytest.approx(0.5)
    assert aggregate([]) == 0.0


def test_a_track_wavering_around_the_threshold_is_named():
    # like Miranda's close-up: half the frames below the threshold, so per-frame matching fails half the time
    rows = [{"miranda": 0.95 if k % 2 else 0.915, "obama": 0.88} for k in range(20)]
    decision = decide_identity(dets(*rows), THRESHOLD)
    assert decision.identity == "miranda" and decision.similarity == pytest.approx(0.95)
    assert decision.runner_up == ("obama", pytest.approx(0.88))


def test_one_lucky_frame_does_not_name_a_track():
    # like the audience member who reaches 0.929 against Paul Rudd's photo in one frame
    rows = [{"rudd": 0.929 if k == 5 else 0.89, "other": 0.85} for k in range(20)]
    assert decide_identity(dets(*rows), THRESHOLD).identity is None


def test_the_winner_needs_a_margin_over_the_runner_up():
    rows = [{"a": 0.95, "b": 0.94}] * 10
    assert decide_identity(dets(*rows), THRESHOLD).identity is None
    assert decide_identity(dets(*rows), THRESHOLD, margin=0.005).identity == "a"


def test_short_tracks_stay_unnamed():
    rows = [{"a": 0.99, "b": 0.8}] * 2
    assert decide_identity(dets(*rows), THRESHOLD).identity is None
    assert decide_identity(dets(*rows), THRESHOLD, min_faces=2).identity == "a"


def test_identities_missing_from_candidate_lists_count_against_the_winner_and_for_the_runner_up():
    # "a" is listed in only 2 of 10 faces: its worst case is -1 elsewhere, so it cannot win
    rows = [{"a": 0.99, "b": 0.7}] * 2 + [{"b": 0.7, "c": 0.69}] * 8
    assert decide_identity(dets(*rows), THRESHOLD).identity is None
    # lists cut after the first candidate say nothing about "b" there: it may have been as high as "a"
    rows = [{"a": 0.97}] * 10 + [{"a": 0.97, "b": 0.80}]
    decision = decide_identity(dets(*rows), THRESHOLD)
    assert decision.identity is None and decision.runner_up == ("b", pytest.approx(0.97))
    rows = [{"a": 0.97, "b": 0.80}] * 11  # the same faces with "b" listed: a clear lead
    assert decide_identity(dets(*rows), THRESHOLD).identity == "a"


def unit(seed: int, dim: int = 16) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim)
    return v / np.linalg.norm(v)


def near(v: np.ndarray, seed: int, noise: float = 0.05) -> np.ndarray:
    w = v + noise * np.random.default_rng(seed).normal(size=v.shape) / np.sqrt(len(v))
    return w / np.linalg.norm(w)


def test_tracker_follows_two_moving_faces_and_a_cut_ends_them():
    tracker = Tracker(TrackerConfig.for_threshold(THRESHOLD))
    a, b = unit(1), unit(2)
    for frame in range(0, 30, 3):
        x = 2.0 * frame
        tracker.update(
            [
                Detection(frame, (100 + x, 50, 180 + x, 150), 1.0, near(a, frame)),
                Detection(frame, (400 - x, 60, 470 - x, 150), 1.0, near(b, 100 + frame)),
            ]
        )
    tracker.cut()
    tracker.update([Detection(30, (100, 50, 180, 150), 1.0, near(a, 99))])  # same place, new shot
    tracks = tracker.close()
    assert [len(t.detections) for t in tracks] == [10, 10, 1]
    assert {round(t.detections[0].box[0]) for t in tracks[:2]} == {100, 400}


def test_tracker_does_not_link_an_overlapping_box_of_another_person():
    tracker = Tracker(TrackerConfig.for_threshold(THRESHOLD))
    a, b = unit(3), unit(4)  # random 16-d vectors: similarity near 0
    tracker.update([Detection(0, (100, 50, 180, 150), 1.0, a)])
    tracker.update([Detection(3, (105, 50, 185, 150), 1.0, b)])
    assert [len(t.detections) for t in tracker.close()] == [1, 1]


def test_tracker_reattaches_a_face_after_a_miss_by_its_embedding():
    tracker = Tracker(TrackerConfig.for_threshold(THRESHOLD, max_missed=3))
    a = unit(5)
    tracker.update([Detection(0, (100, 50, 180, 150), 1.0, a)])
    tracker.update([])  # the detector missed it
    tracker.update([Detection(6, (300, 50, 380, 150), 1.0, near(a, 1, 0.01))])  # far away, same face
    assert [len(t.detections) for t in tracker.close()] == [2]


def test_track_boxes_interpolate_over_skipped_frames_only():
    track = Track(
        1,
        [
            Detection(0, (0, 0, 10, 10), 1, None),
            Detection(3, (3, 0, 13, 10), 1, None),
            Detection(20, (3, 0, 13, 10), 1, None),
        ],
    )
    boxes = track_boxes(track, max_gap=6)
    assert list(boxes) == [0, 1, 2, 3, 20]  # 3 -> 20 is a gap too long to bridge
    assert boxes[1] == pytest.approx((1, 0, 11, 10))


def test_sample_indices_round_to_the_nearest_frame_inside_the_window():
    info = VideoInfo(Path("x.mp4"), 29.97, 640, 360, 275)
    assert sample_indices(info, 2.0, 3.0, 0.5) == [60, 75, 90, 105, 120, 135]
    assert sample_indices(info, 0.0, None, 1.0) == [0, 30, 60, 90, 120, 150, 180, 210, 240, 270]
    assert sample_indices(info, 1.0, 0.2, 0.001) == [30, 31, 32, 33, 34, 35]  # 36 is at 1.2012 s
    assert sample_indices(info, 9.5, None, 1.0) == []


def test_frontality_from_landmark_symmetry():
    frontal = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], float)
    turned = np.array([[30, 40], [70, 40], [62, 60], [40, 80], [72, 80]], float)
    profile = np.array([[30, 40], [50, 40], [58, 60], [40, 80], [52, 80]], float)  # nose outside the eyes
    assert frontality(frontal) == pytest.approx(1.0)
    assert 0.3 < frontality(turned) < 0.9
    assert frontality(profile) < frontality(turned)
    rotated = frontal @ np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    assert frontality(rotated) == pytest.approx(1.0)  # head roll does not count


def test_select_best_prefers_good_faces_spread_in_time_and_skips_outliers():
    base = unit(7, 128)
    faces, vectors = [], []
    for k in range(12):
        faces.append(
            {
                "id": k,
                "time": float(k // 2),
                "box": [0, 0, 100, 100],
                "score": 0.99,
                "frontality": 0.9,
                "sharpness": 100.0 + k,
            }
        )
        vectors.append(near(base, k, 0.1))
    faces[11]["frontality"] = faces[11]["sharpness"] = 1e6  # best quality, but someone else:
    vectors[11] = unit(99, 128)
    picks = select_best(faces, np.stack(vectors), count=3)
    assert 11 not in picks and len(picks) == 3
    times = sorted(faces[i]["time"] for i in picks)
    assert len(set(times)) == 3  # never two faces of one moment while others are available
