"""Naming tracks from everything they saw, and the enrollment quality gate, with the real engine on
the shared clips: the stage clip analysed as a video job does (the shared gallery enrolled through
the photo enrollment path), its labelled tracks (pipeline/evaluation/track_labels.tsv) named right
or not at all; the street crowd, where nobody enrolled appears, left unnamed; the piano player's
tiny dark track refused for enrollment with the reason while his probe photo stays recognised.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from inference_service.analysis import photos
from inference_service.analysis.annotate import Hooks, annotate_video
from inference_service.analysis.matcher import EngineMatcher
from inference_service.analysis.source import probe
from inference_service.gallery import Gallery, MemoryStore
from inference_service.videos.errors import VideoErrorKind
from inference_service.videos.files import JobFiles, new_job_id
from inference_service.videos.tracks import TrackError, enroll_track
from pipeline.evaluation.tracks import label_of, read_labels

LIMITS = photos.PixelLimits(40_000_000, 100_000_000)
ALEX = "alex_lacamoire"


@pytest.fixture(scope="module")
def gallery(engine, faces_dir: Path) -> Gallery:
    """One face of every gallery photo, enrolled as the API enrolls them (through the quality gate)."""
    gallery = Gallery(MemoryStore(), engine.embedder.name, engine.embedder.dim)
    for person in sorted((faces_dir / "gallery").iterdir()):
        uploads = [(p.name, p.read_bytes()) for p in sorted(person.iterdir())]
        photos.enroll(engine, gallery, person.name, uploads, LIMITS)
    return gallery


def _analyse(engine, gallery, clip: Path, out: Path) -> dict:
    matcher = EngineMatcher(engine, gallery)
    hooks = Hooks(best_faces=5, show_progress=False)
    return annotate_video(clip, probe(clip), matcher, out, clip.name, render=False, hooks=hooks)


@pytest.fixture(scope="module")
def stage_job(engine, gallery, faces_dir, tmp_path_factory) -> tuple[JobFiles, dict]:
    files = JobFiles(tmp_path_factory.mktemp("jobs"), new_job_id())
    timeline = _analyse(engine, gallery, faces_dir / "video" / "stage_640x360.mp4", files.results)
    return files, timeline


def _labelled(timeline: dict, clip: str):
    labels = [label for label in read_labels() if label.clip == clip]
    return [(label_of(track, labels), track) for track in timeline["tracks"]]


def test_stage_tracks_are_named_right_or_not_at_all(stage_job):
    _, timeline = stage_job
    labelled = [(label, track) for label, track in _labelled(timeline, "stage_640x360.mp4") if label is not None]
    assert len(labelled) == 8, [t["frames"][0] for _, t in labelled]
    named = {(label.identity, label.condition): track["identity"] for label, track in labelled}
    for (identity, condition), name in named.items():
        assert name in (None, identity), (identity, condition, name)  # never a wrong name
    # the frontal close-up, the two small faces of the wide shot and the piano player's profile
    assert named[("lin_manuel_miranda", "frontal")] == "lin_manuel_miranda"
    assert named[("lin_manuel_miranda", "small")] == "lin_manuel_miranda"
    assert named[(ALEX, "small")] == ALEX
    assert named[(ALEX, "profile")] == ALEX
    assert timeline["track_threshold"] is not None
    for track in timeline["tracks"]:
        if track["identity"] is None:
            continue
        assert track["faces"] >= timeline["min_faces"]


def test_the_profile_track_is_named_by_its_template(stage_job):
    """Each frame of the profile scores under the threshold; the mean of its faces does not."""
    _, timeline = stage_job
    (profile,) = [
        t
        for label, t in _labelled(timeline, "stage_640x360.mp4")
        if label and label.condition == "profile" and label.identity == ALEX
    ]
    assert profile["rules"] == {"frames": None, "template": ALEX}
    assert profile["similarity"] < timeline["threshold"] <= profile["template"]["similarity"]


def test_nobody_is_named_in_the_street_crowd(engine, gallery, faces_dir, tmp_path):
    timeline = _analyse(engine, gallery, faces_dir / "video" / "street_1920x1080.mp4", tmp_path)
    assert len(timeline["tracks"]) >= 5
    assert [t["identity"] for t in timeline["tracks"] if t["identity"]] == []


def test_the_piano_track_is_refused_and_the_probe_still_recognised(engine, gallery, stage_job, faces_dir):
    files, timeline = stage_job
    (piano,) = [
        t
        for label, t in _labelled(timeline, "stage_640x360.mp4")
        if label and label.condition == "small" and label.identity == ALEX
    ]
    before = gallery.faces_of(ALEX)
    with pytest.raises(TrackError) as refused:
        enroll_track(files, piano["track_id"], ALEX, gallery, 5)
    assert refused.value.kind is VideoErrorKind.LOW_QUALITY
    assert "px wide, at least 40 are needed" in refused.value.detail
    assert len(gallery.faces_of(ALEX)) == len(before)  # nothing stored
    answer = photos.recognize(
        engine, gallery, (faces_dir / "probes" / "alex_lacamoire_3.jpg").read_bytes(), LIMITS, engine.threshold
    )
    assert [f["identity"] for f in answer["faces"]] == [ALEX]


def test_a_tracks_kept_faces_span_its_poses(stage_job):
    import json

    files, timeline = stage_job
    kept = json.loads((files.results / "faces.json").read_text())["faces"]
    by_track: dict[int, list[dict]] = {}
    for row in kept:
        by_track.setdefault(row["track_id"], []).append(row)
    frontal = max(timeline["tracks"], key=lambda t: t["faces"])  # Miranda's close-up: 40+ faces
    rows = by_track[frontal["track_id"]]
    assert len(rows) == 5 and all(row["quality"] and row["side"] is not None for row in rows)
    assert len({row["side"] for row in rows}) >= 2, [row["side"] for row in rows]


def test_photo_enrollment_refuses_a_tiny_or_dark_face_unless_forced(engine, faces_dir):
    gallery = Gallery(MemoryStore(), engine.embedder.name, engine.embedder.dim)
    image = cv2.imread(str(faces_dir / "probes" / "obama_3.jpg"))
    dark = (image * 0.15).astype(np.uint8)
    data = cv2.imencode(".png", dark)[1].tobytes()
    with pytest.raises(photos.InputError) as refused:
        photos.enroll(engine, gallery, "obama", [("dark.png", data)], LIMITS)
    assert (
        refused.value.kind == "low_quality" and "too dark" in refused.value.detail and "force" in refused.value.detail
    )
    assert gallery.identities() == []
    forced = photos.enroll(engine, gallery, "obama", [("dark.png", data)], LIMITS, force=True)
    assert forced["faces"] == 1
