"""Track templates, the two-rule track decision, keeping faces across poses, the enrollment gate,
and the engine's flip augmentation and border padding, on constructed inputs. No weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from inference_service.analysis.annotate import FACES_EMBEDDINGS, FACES_INDEX, _best_faces
from inference_service.analysis.quality import FaceQuality, enrollment_problems, frontality, yaw_side
from inference_service.analysis.templates import face_weight, identity_scores, name_track, track_template
from inference_service.analysis.tracking import Detection, Track, decide_identity
from inference_service.engine.alignment import box_crops
from inference_service.engine.embedders.base import Embedder
from inference_service.gallery import Gallery, MemoryStore
from inference_service.videos.errors import VideoErrorKind
from inference_service.videos.files import JobFiles, new_job_id
from inference_service.videos.tracks import TrackError, enroll_track

THRESHOLD = 0.926
FRONTAL = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], dtype=np.float32)
TURNED_RIGHT = np.array([[30, 40], [70, 40], [68, 60], [35, 80], [65, 80]], dtype=np.float32)  # nose by one eye
TURNED_LEFT = np.array([[30, 40], [70, 40], [32, 60], [35, 80], [65, 80]], dtype=np.float32)


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def det(frame, vector, width=100.0, sharpness=200.0, brightness=120.0, landmarks=FRONTAL, candidates=None):
    return Detection(
        frame,
        (0.0, 0.0, width, width),
        0.99,
        unit(vector),
        dict(candidates or {}),
        landmarks=landmarks,
        sharpness=sharpness,
        brightness=brightness,
    )


# --- the template -------------------------------------------------------------------------------
def test_template_weighs_sharp_frontal_large_faces_above_small_blurred_profiles():
    good = det(0, [1, 0, 0])
    poor = det(1, [0, 1, 0], width=20, sharpness=10, landmarks=TURNED_RIGHT)
    assert face_weight(good) == pytest.approx(1.0)
    assert face_weight(poor) < 0.1
    template = track_template([good, poor, poor])
    assert template is not None and template.vector @ unit([1, 0, 0]) > 0.9  # one good face outweighs two poor


def test_template_drops_a_face_unlike_the_rest():
    rng = np.random.default_rng(0)
    person = unit(rng.normal(size=16))
    faces = [det(k, person + 0.05 * rng.normal(size=16)) for k in range(8)]
    stray = det(9, rng.normal(size=16))  # the box slid onto someone else
    template = track_template([*faces, stray])
    assert template is not None and template.dropped == 1 and template.faces == 8
    assert template.vector @ person > 0.99


def test_identity_scores_take_the_better_of_single_faces_and_identity_template():
    a1, a2 = unit([1, 0.3, 0]), unit([1, -0.3, 0])  # two photos of a; the template sits between them
    template = unit([1, 0, 0])
    single = {"a": float(max(a1 @ template, a2 @ template))}
    scores = identity_scores(template, single, {"a": np.stack([a1, a2])})
    assert scores["a"] == pytest.approx(1.0, abs=1e-6) and scores["a"] > single["a"]


# --- the decision --------------------------------------------------------------------------------
def test_template_names_a_track_whose_frames_all_miss():
    # a profile track: every frame just under the threshold, the template over it
    detections = [det(k, [1, 0], candidates={"a": 0.92, "b": 0.88}) for k in range(5)]
    frames_only = decide_identity(detections, THRESHOLD)
    both = decide_identity(detections, THRESHOLD, template={"a": 0.936, "b": 0.90})
    assert frames_only.identity is None
    assert both.identity == "a" and both.by_template == "a" and both.by_frames is None
    assert both.score == pytest.approx(0.936)  # the label shows the template's score


def test_rules_that_disagree_name_nobody():
    detections = [det(k, [1, 0], candidates={"a": 0.95, "b": 0.85}) for k in range(5)]
    decision = decide_identity(detections, THRESHOLD, template={"b": 0.95, "a": 0.90})
    assert decision.by_frames == "a" and decision.by_template == "b" and decision.identity is None


def test_template_needs_its_threshold_margin_and_enough_faces():
    detections = [det(k, [1, 0]) for k in range(5)]
    assert decide_identity(detections, THRESHOLD, template={"a": 0.925}).identity is None  # under
    close = {"a": 0.94, "b": 0.935}
    assert decide_identity(detections, THRESHOLD, template=close, template_margin=0.01).identity is None
    assert decide_identity(detections, THRESHOLD, template=close, template_margin=0.002).identity == "a"
    assert decide_identity(detections[:2], THRESHOLD, template={"a": 0.99}).identity is None  # 2 < min_faces
    raised = decide_identity(detections, THRESHOLD, template={"a": 0.94}, track_threshold=0.95)
    assert raised.identity is None


def test_name_track_without_a_search_uses_the_frames_alone():
    detections = [det(k, [1, 0], candidates={"a": 0.95}) for k in range(3)]
    calls = []

    def search(vector):
        calls.append(vector)
        return {"b": 0.99}

    assert name_track(detections, THRESHOLD, THRESHOLD, None).identity == "a"
    assert name_track(detections, THRESHOLD, THRESHOLD, search).identity is None  # disagreement
    assert len(calls) == 1 and calls[0].shape == (2,)


# --- faces kept for enrolling ---------------------------------------------------------------------
def test_yaw_side_tells_left_right_and_frontal():
    assert yaw_side(FRONTAL) == 0 and frontality(FRONTAL) == pytest.approx(1.0)
    assert {yaw_side(TURNED_LEFT), yaw_side(TURNED_RIGHT)} == {-1, 1}


def test_kept_faces_cover_the_poses_of_a_track():
    # ten sharp frontal faces and a few profiles to each side: the frontal ones alone would fill five places
    faces = [det(k, [1, 0.01 * k, 0]) for k in range(10)]
    faces += [det(10 + k, [1, 0, 0.02], width=90, landmarks=TURNED_LEFT) for k in range(3)]
    faces += [det(20 + k, [1, 0.02, 0], width=90, landmarks=TURNED_RIGHT) for k in range(3)]
    kept = _best_faces([Track(1, faces)], 5)[1]
    sides = [yaw_side(d.landmarks) for d in kept]
    assert len(kept) == 5 and {-1, 0, 1} <= set(sides)


def test_kept_faces_prefer_those_that_pass_the_gate():
    faces = [det(k, [1, 0], width=30) for k in range(4)] + [det(9, [1, 0], width=60)]
    assert _best_faces([Track(1, faces)], 1)[1][0].frame == 9


# --- the enrollment gate ----------------------------------------------------------------------------
def test_gate_names_every_reason():
    assert enrollment_problems(FaceQuality(120, 120, 200)) == []
    problems = enrollment_problems(FaceQuality(24, 20, 5))
    assert len(problems) == 3
    assert "24 px wide" in problems[0] and "dark" in problems[1] and "blurred" in problems[2]


def _job_with_track(tmp_path, qualities) -> JobFiles:
    files = JobFiles(tmp_path, new_job_id())
    files.results.mkdir(parents=True)
    rows = [
        {"track_id": 1, "row": k, "frame": k, "box": [0, 0, q[0], q[0]], "score": 0.99, "quality": None}
        for k, q in enumerate(qualities)
    ]
    for row, (width, bright, sharp) in zip(rows, qualities):
        row["quality"] = {"width": width, "brightness": bright, "sharpness": sharp}
    (files.results / FACES_INDEX).write_text(json.dumps({"embedder": "test", "faces": rows}))
    np.save(files.results / FACES_EMBEDDINGS, np.stack([unit([1, 0.01 * k]) for k in range(len(rows))]))
    return files


def test_track_enroll_refuses_a_track_of_poor_faces_unless_forced(tmp_path):
    gallery = Gallery(MemoryStore(), "test", 2)
    files = _job_with_track(tmp_path, [(24, 50, 89)] * 3)  # the stage clip's piano player
    with pytest.raises(TrackError) as refused:
        enroll_track(files, 1, "alex", gallery, 5)
    assert refused.value.kind is VideoErrorKind.LOW_QUALITY and "24 px wide" in refused.value.detail
    assert gallery.identities() == []
    forced = enroll_track(files, 1, "alex", gallery, 5, force=True)
    assert len(forced["added"]) == 3 and forced["skipped"] == []


def test_track_enroll_leaves_out_the_poor_faces_of_a_good_track(tmp_path):
    gallery = Gallery(MemoryStore(), "test", 2)
    files = _job_with_track(tmp_path, [(120, 120, 200), (24, 50, 89), (120, 20, 200)])
    answer = enroll_track(files, 1, "alex", gallery, 5)
    assert len(answer["added"]) == 1 and len(answer["skipped"]) == 2
    assert "dark" in answer["skipped"][1]["reasons"][0]


# --- the engine: flip augmentation and border padding ----------------------------------------------
class _Linear(Embedder):
    name, dim, default_threshold = "linear", 4, 0.5

    def crops(self, image, faces):
        raise NotImplementedError

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        self.batches.append(len(pixels))
        return self.module(pixels.flatten(1))


def test_flip_tta_averages_each_chip_with_its_mirror_in_one_pass():
    torch.manual_seed(0)
    embedder = _Linear(torch.nn.Linear(3 * 8 * 8, 4), torch.device("cpu"), batch_size=32)
    embedder.batches = []
    chips = np.random.default_rng(0).integers(0, 255, size=(3, 8, 8, 3), dtype=np.uint8)
    embedder.flip_tta = False
    plain = embedder.embed(chips)
    mirrored = embedder.embed(chips[:, :, ::-1].copy())
    embedder.flip_tta = True
    embedder.batches = []
    both = embedder.embed(chips)
    assert embedder.batches == [6]  # 2N chips, one forward pass
    expected = plain + mirrored
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(both, expected, atol=1e-5)
    assert not np.allclose(both, plain, atol=1e-3)


def test_box_crop_of_a_face_cut_by_the_border_keeps_its_proportions():
    # a dark vertical bar at x=20 in a bright image; the box is centred on it but runs 10 px
    # past the left border: clipping to [0, 50] would squeeze the bar to column 24 of 60
    image = np.full((100, 100, 3), 220, dtype=np.uint8)
    image[:, 18:23] = 0
    crop = box_crops(image, np.array([[-10.0, 20.0, 50.0, 80.0]]), size=60, margin=0)[0]
    darkest = int(np.argmin(crop[30, :, 0]))
    assert abs(darkest - 30) <= 2, darkest
    inside = box_crops(image, np.array([[0.0, 20.0, 60.0, 80.0]]), size=60, margin=0)[0]
    assert int(np.argmin(inside[30, :, 0])) == pytest.approx(20, abs=2)  # no padding needed: as before
