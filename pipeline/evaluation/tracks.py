"""Labelled track evaluation: is every track named right, and do strangers' tracks stay unnamed?

Single-photo pairs say little about tracks: a track is named from all its faces (the core's
``templates.name_track``), and a template of many faces scores differently from one photo. Two
kinds of labelled tracks are judged, each named by the same rule the video jobs use:

* **clip tracks**: the manifest's clips analysed as a video job would (``annotate_video`` without
  rendering, the shared gallery enrolled), matched to ``track_labels.tsv`` (labelled by eye: a
  frame, a point on the face, who it is and in what condition). A clip labelled ``*`` (the
  street crowd) has only strangers: every one of its tracks must stay unnamed.
* **photo tracks**: each labelled photo face turned into short tracks of ``FRAMES`` jittered
  frames in three conditions: as it is (at most ``PHOTO_WIDTH`` px wide; ``frontal``, or
  ``profile`` by its landmarks), shrunk to a face ``SMALL_WIDTH`` px wide (``small``) and
  shifted so ``CUT_FRACTION`` of it lies out of the frame (``cut``). A person's track is judged twice: against the gallery (must be named
  right) and against the gallery without that person (must stay unnamed: leave one out).

The gallery is one face per ``gallery``-role photo. Each track's decision says what the frames
rule alone names (``before``: the service before track templates) and what frames and template
together name (``after``), so the report shows what the template adds per condition.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .data import FaceSpec

LABELS = Path(__file__).with_name("track_labels.tsv")
FRAMES = 5  # frames of a simulated photo track
PHOTO_WIDTH = 120.0  # px: larger photo faces are shrunk to this first (video faces are rarely larger)
SMALL_WIDTH = 28.0  # px: the stage clip's piano player is 24 px wide, its wide-shot singer 38
CUT_FRACTION = 0.4  # of the face's width outside the frame
CONDITIONS = ("frontal", "profile", "small", "cut")
PROFILE_FRONTALITY = 0.3  # quality.frontality below this: a profile


@dataclass
class JudgedTrack:
    kind: str  # "clip" or "photo"
    source: str  # clip name, or the photo's label
    identity: str | None  # who it is (None: a stranger)
    condition: str
    faces: int
    enrolled: bool  # the person is in the gallery it was judged against
    before: str | None  # name given by the frames rule alone
    after: str | None  # name given by frames and template
    template: tuple[str, float] | None  # the template's best identity and score

    def outcome(self, which: str) -> str:
        named = self.before if which == "before" else self.after
        if named is None:
            return "unnamed"
        return "right" if self.enrolled and named == self.identity else "wrong"


# --- the gallery ---------------------------------------------------------------------------


class ArrayGallery:
    """Identity -> embeddings, searched as ``Gallery.search`` and ``EngineMatcher.template_candidates``
    do (best single face per identity; identity template = unit mean of its faces)."""

    def __init__(self, faces: dict[str, np.ndarray]) -> None:
        self.faces = faces

    def without(self, identity: str | None) -> ArrayGallery:
        return ArrayGallery({k: v for k, v in self.faces.items() if k != identity})

    def candidates(self, vector: np.ndarray) -> dict[str, float]:
        return {name: float((faces @ vector).max()) for name, faces in self.faces.items()}

    def template_candidates(self, vector: np.ndarray) -> dict[str, float]:
        from inference_service.analysis.templates import identity_scores

        return identity_scores(vector, self.candidates(vector), self.faces)


def gallery_from(specs: Sequence[FaceSpec], embeddings: np.ndarray) -> ArrayGallery:
    faces: dict[str, list[np.ndarray]] = {}
    for spec, vector in zip(specs, embeddings):
        if spec.role == "gallery" and spec.identity is not None:
            faces.setdefault(spec.identity, []).append(vector)
    return ArrayGallery({k: np.stack(v) for k, v in faces.items()})


# --- naming -----------------------------------------------------------------------------------


def judge(detections, gallery: ArrayGallery, threshold: float, track_threshold: float):
    """The decision on one track against ``gallery``: ``by_frames`` is what the frames rule alone
    names (before templates), ``identity`` what both together name."""
    from inference_service.analysis.templates import name_track

    for det in detections:
        det.candidates = gallery.candidates(det.embedding)
    return name_track(detections, threshold, track_threshold, gallery.template_candidates)


# --- photo tracks ---------------------------------------------------------------------------------


def _condition_frames(image: np.ndarray, box, condition: str, rng: np.random.Generator):
    """FRAMES jittered copies of ``image`` in ``condition`` and where the face's box went in each."""
    x1, y1, x2, y2 = box
    width = x2 - x1
    scale = SMALL_WIDTH / width if condition == "small" else 1.0
    if condition == "cut":  # move the face left until CUT_FRACTION of it is out of the frame
        shift_x = -(x1 + CUT_FRACTION * width)
    else:
        shift_x = 0.0
    out = []
    for _ in range(FRAMES):
        s = scale * rng.uniform(0.95, 1.05)
        dx = shift_x * s + rng.uniform(-0.03, 0.03) * width * s
        dy = rng.uniform(-0.03, 0.03) * width * s
        matrix = np.array([[s, 0, dx], [0, s, dy]])
        size = (max(32, int(round(image.shape[1] * s))), max(32, int(round(image.shape[0] * s))))
        frame = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        moved = (x1 * s + dx, y1 * s + dy, x2 * s + dx, y2 * s + dy)
        out.append((frame, moved))
    return out


def photo_tracks(engine, specs: Sequence[FaceSpec], max_pixels: int, seed: int = 0):
    """(spec, condition, detections) for every labelled face and condition it could be found in."""
    from inference_service.analysis.quality import frontality, sharpness
    from inference_service.analysis.tracking import Detection
    from inference_service.engine import iou, load_image

    rng = np.random.default_rng(seed)
    out = []
    for spec in specs:
        if spec.box is None or spec.role in ("gallery", "resolution"):
            continue  # enrolled photos are the gallery; the resolution rows are one photo four times
        image = load_image(spec.path.read_bytes(), max_pixels)
        x1, y1, x2, y2 = spec.box
        shrink = min(1.0, PHOTO_WIDTH / (x2 - x1))
        if shrink < 1:  # detection on a large photo costs seconds and adds nothing a video has
            image = cv2.resize(image, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        box = (x1 * shrink, y1 * shrink, x2 * shrink, y2 * shrink)
        for condition in ("frontal", "small", "cut"):
            detections = []
            for index, (frame, moved) in enumerate(_condition_frames(image, box, condition, rng)):
                faces = engine.detect(frame)
                best = max(faces, key=lambda f: iou(f.box, moved), default=None)
                if best is None or iou(best.box, moved) < 0.3:
                    continue
                vector = engine.embed_faces(frame, [best])[0]
                detections.append(
                    Detection(
                        index,
                        best.box,
                        best.score,
                        vector,
                        landmarks=np.asarray(best.landmarks, dtype=np.float32),
                        sharpness=sharpness(frame, best.box),
                    )
                )
            if not detections:
                continue
            named = condition
            if condition == "frontal":
                pose = float(np.median([frontality(d.landmarks) for d in detections if d.landmarks is not None]))
                named = "profile" if pose < PROFILE_FRONTALITY else "frontal"
            out.append((spec, named, detections))
    return out


# --- clip tracks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackLabel:
    clip: str
    frame: int | None  # None: every track of the clip
    point: tuple[float, float] | None
    identity: str | None
    condition: str


def read_labels(path: Path = LABELS) -> list[TrackLabel]:
    labels = []
    with open(path, newline="") as fh:
        for row in csv.DictReader((line for line in fh if not line.startswith("#")), delimiter="\t"):
            every = row["frame"] == "*"
            labels.append(
                TrackLabel(
                    row["clip"],
                    None if every else int(row["frame"]),
                    None if every else (float(row["x"]), float(row["y"])),
                    None if row["identity"] == "?" else row["identity"],
                    row["condition"],
                )
            )
    return labels


def label_of(track: dict, labels: Sequence[TrackLabel]) -> TrackLabel | None:
    """The label whose point lies in the track's box at the label's frame (or the clip's ``*``)."""
    for label in labels:
        if label.frame is None or label.point is None:
            return label
        if label.frame in track["frames"]:
            x1, y1, x2, y2 = track["boxes"][track["frames"].index(label.frame)]
            if x1 <= label.point[0] <= x2 and y1 <= label.point[1] <= y2:
                return label
    return None


def clip_tracks(engine, clips: Sequence[Path], gallery: ArrayGallery, track_threshold: float):
    """(label, timeline track) of every labelled track of the clips, analysed as a video job.

    The track's ``rules`` say what the frames rule and the template rule each named.
    """
    from inference_service.analysis.annotate import Hooks, annotate_video
    from inference_service.analysis.matcher import EngineMatcher
    from inference_service.analysis.source import probe
    from inference_service.gallery import Gallery

    labels = read_labels()
    quiet = Hooks(show_progress=False)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Gallery.open(Path(tmp) / "gallery.sqlite3", engine.embedder.name, engine.embedder.dim)
        for name, faces in gallery.faces.items():
            store.enroll(name, faces)
        for clip in clips:
            mine = [label for label in labels if label.clip == clip.name]
            if not mine:
                continue
            matcher = EngineMatcher(engine, store, source="evaluation")
            matcher.track_threshold = track_threshold
            timeline = annotate_video(
                clip, probe(clip), matcher, Path(tmp) / clip.stem, clip.name, render=False, hooks=quiet
            )
            for track in timeline["tracks"]:
                label = label_of(track, mine)
                if label is not None:
                    out.append((label, track))
        store.close()
    return out


def manifest_clips(manifest: Path) -> list[Path]:
    """The ``video`` rows of a MANIFEST.tsv that exist."""
    with open(manifest, newline="") as fh:
        rows = [row for row in csv.DictReader(fh, delimiter="\t") if row["role"] == "video"]
    return [manifest.parent / row["path"] for row in rows if (manifest.parent / row["path"]).is_file()]


# --- the report -------------------------------------------------------------------------------------


def _judged_photo_tracks(engine, specs, gallery: ArrayGallery, threshold, track_threshold, max_pixels):
    out = []
    for spec, condition, detections in photo_tracks(engine, specs, max_pixels):
        enrolled = spec.identity in gallery.faces
        galleries = [(gallery, enrolled)]
        if enrolled:  # and once more as a stranger: the same person left out of the gallery
            galleries.append((gallery.without(spec.identity), False))
        for which, known in galleries:
            decision = judge(detections, which, threshold, track_threshold)
            out.append(
                JudgedTrack(
                    "photo",
                    spec.label,
                    spec.identity,
                    condition,
                    len(detections),
                    known,
                    decision.by_frames,
                    decision.identity,
                    decision.template,
                )
            )
    return out


def _judged_clip_tracks(engine, clips, gallery: ArrayGallery, track_threshold):
    out = []
    for label, track in clip_tracks(engine, clips, gallery, track_threshold):
        template = track.get("template")
        out.append(
            JudgedTrack(
                "clip",
                f"{label.clip}@{track['frames'][0]}",
                label.identity,
                label.condition,
                track["faces"],
                label.identity is not None and label.identity in gallery.faces,
                track["rules"]["frames"],
                track["identity"],
                (template["identity"], template["similarity"]) if template else None,
            )
        )
    return out


def evaluate_tracks(
    engine, specs, embeddings, clips: Sequence[Path], threshold: float, track_threshold: float, max_pixels: int
) -> dict:
    """The track section of ``evaluate``: named, wrong and unnamed tracks per kind and condition,
    and how far strangers' templates stay below ``track_threshold``."""
    gallery = gallery_from(specs, embeddings)
    judged = _judged_clip_tracks(engine, clips, gallery, track_threshold) if clips else []
    judged += _judged_photo_tracks(engine, specs, gallery, threshold, track_threshold, max_pixels)
    rows = []
    for kind in ("clip", "photo"):
        mine = [t for t in judged if t.kind == kind]
        for condition in sorted({t.condition for t in mine if t.enrolled}, key=_condition_order):
            group = [t for t in mine if t.enrolled and t.condition == condition]
            rows.append(_row(kind, condition, group))
    strangers = [t for t in judged if not t.enrolled]
    stranger_scores = [t.template[1] for t in strangers if t.template]
    known_scores = [t.template[1] for t in judged if t.enrolled and t.template and t.after == t.identity]
    highest = max(stranger_scores, default=None)
    return {
        "threshold": threshold,
        "track_threshold": track_threshold,
        "rows": rows,
        "strangers": {
            "tracks": len(strangers),
            "named_before": sum(t.before is not None for t in strangers),
            "named_after": sum(t.after is not None for t in strangers),
            "highest_template": highest,
            "highest_template_track": max(strangers, key=lambda t: t.template[1] if t.template else -2).source
            if strangers
            else None,
        },
        "wrong_names": sum(t.outcome("after") == "wrong" for t in judged),
        "wrong_names_before": sum(t.outcome("before") == "wrong" for t in judged),
        "margin": None if highest is None else round(track_threshold - highest, 4),
        "lowest_named_template": min(known_scores, default=None),
        "tracks": [t.__dict__ for t in judged],
    }


def _condition_order(condition: str) -> int:
    return CONDITIONS.index(condition) if condition in CONDITIONS else len(CONDITIONS)


def _row(kind: str, condition: str, group: list[JudgedTrack]) -> dict:
    return {
        "kind": kind,
        "condition": condition,
        "tracks": len(group),
        "named_before": sum(t.outcome("before") == "right" for t in group),
        "named_after": sum(t.outcome("after") == "right" for t in group),
        "wrong_before": sum(t.outcome("before") == "wrong" for t in group),
        "wrong_after": sum(t.outcome("after") == "wrong" for t in group),
    }


def format_tracks(section: dict) -> str:
    """The Markdown track section of the evaluation summary."""
    s = section["strangers"]
    lines = [
        "",
        f"### Tracks (threshold {section['threshold']:.4f} for frames, {section['track_threshold']:.4f} for templates)",
        "",
        "| tracks of enrolled people | condition | tracks | named before (frames only) | named now (frames + template) | wrong names |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in section["rows"]:
        lines.append(
            f"| {r['kind']} | {r['condition']} | {r['tracks']} | {r['named_before']} ({_share(r, 'named_before')}) | "
            f"{r['named_after']} ({_share(r, 'named_after')}) | {r['wrong_after']} (before {r['wrong_before']}) |"
        )
    highest = s["highest_template"]
    lines += [
        "",
        f"Strangers' tracks (clips' strangers, photo tracks with the person left out of the gallery): "
        f"{s['tracks']}, named {s['named_after']} (before {s['named_before']}). Wrong names in all: "
        f"{section['wrong_names']} (before {section['wrong_names_before']}).",
    ]
    if highest is not None:
        low = section["lowest_named_template"]
        lines.append(
            f"Highest stranger template {highest:.4f} ({s['highest_template_track']}): "
            f"{section['margin']:+.4f} below the track threshold"
            + (f"; lowest template of a track named right {low:.4f}." if low is not None else ".")
        )
    return "\n".join(lines)


# How far above the highest stranger template a proposed track threshold sits: the single-photo
# threshold keeps its highest stranger pair 0.006 below it (dlib-resnet on ../shared/faces).
TRACK_SAFETY = 0.005


def format_track_calibration(section: dict) -> str:
    """What ``calibrate --tracks`` adds: the template threshold the labelled tracks support."""
    highest = section["strangers"]["highest_template"]
    if highest is None:
        return "\nTracks: no stranger track had a template; nothing to calibrate."
    proposed = round(highest + TRACK_SAFETY, 4)
    low = section["lowest_named_template"]
    return (
        f"\n## Track threshold\n\nIn use: {section['track_threshold']:.4f} (templates.track_threshold_for). "
        f"Strangers' track templates reach {highest:.4f} ({section['strangers']['tracks']} tracks); "
        f"{proposed:.4f} keeps them {TRACK_SAFETY} below it"
        + (f"; the lowest template of a track named right is {low:.4f}." if low is not None else ".")
        + f" Wrong names at the threshold in use: {section['wrong_names']}."
    )


def _share(row: dict, key: str) -> str:
    return f"{row[key] / row['tracks']:.0%}" if row["tracks"] else "n/a"


__all__ = [
    "CONDITIONS",
    "ArrayGallery",
    "JudgedTrack",
    "evaluate_tracks",
    "format_track_calibration",
    "format_tracks",
    "judge",
    "manifest_clips",
    "photo_tracks",
]
