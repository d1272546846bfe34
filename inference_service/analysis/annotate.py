"""Track faces through a video, name each track once, write the annotated video and a timeline.

Pass one reads the video, analyses every ``stride``-th frame (in batches, through a local gallery
or the API), watches for shot cuts and links the faces into tracks. Each track is then named from
all its faces (``templates.name_track``). Pass two re-reads the video (cheaper than holding
it in memory) and draws every track on every frame it covers, interpolating boxes across the
skipped frames. ``timeline.json`` lists the tracks with their frames, boxes and times.

``annotate_video`` is that work on an open matcher; the CLI's ``annotate`` and the API's video
jobs call it, the jobs with their own engine and gallery (:class:`~inference_service.analysis.matcher.EngineMatcher`) and :class:`Hooks` for progress,
cancelling, H.264 output and keeping each track's best faces for enrolling later.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..atomic import write_json, write_npy
from .errors import AnalysisError
from .matcher import FrameMatcher
from .quality import FaceQuality, crop_with_margin, enrollment_problems, yaw_side
from .render import label_colour, write_video
from .shots import ShotDetector
from .source import VideoInfo, read_frames
from .templates import OUTLIER_DROP, face_weight, name_track, track_template
from .tracking import Detection, Tracker, TrackerConfig, track_boxes

ANALYSED_PER_SECOND = 10.0  # default analysis rate: faces move little in a tenth of a second
BATCH = 16
FACES_DIR = "faces"  # run-folder subfolder of the tracks' best face crops
FACES_INDEX = "faces.json"
FACES_EMBEDDINGS = "face_embeddings.npy"


@dataclass
class Hooks:
    """How a caller other than the CLI drives ``annotate_video``.

    ``progress(stage, frames_done, frames_total)`` is called for every frame read in each pass
    (stage ``analysing`` then ``rendering``); raising from it stops the work there.
    ``best_faces`` > 0 keeps that many faces per track, chosen across its poses (crop JPEGs in
    ``faces/``, embeddings in ``face_embeddings.npy``, listed in ``faces.json`` with what the
    enrollment gate looks at), so a track can be enrolled later without the video.
    """

    progress: Callable[[str, int, int], None] | None = None
    codec: str = "mp4v"
    best_faces: int = 0
    show_progress: bool = True


def default_stride(fps: float) -> int:
    return max(1, round(fps / ANALYSED_PER_SECOND))


def annotate_video(
    path: Path,
    info: VideoInfo,
    matcher: FrameMatcher,
    out: Path,
    label: str,
    stride: int | None = None,
    margin: float = 0.02,
    min_faces: int = 3,
    render: bool = True,
    hooks: Hooks | None = None,
) -> dict:
    """Annotate the local video ``path`` with an open ``matcher`` into ``out``; returns the timeline."""
    hooks = hooks or Hooks()
    step = stride or default_stride(info.fps)
    out.mkdir(parents=True, exist_ok=True)
    tracks, frames_read = _track(path, info, matcher, step, hooks)
    if frames_read == 0:
        raise AnalysisError(f"cannot read video {label}: no decodable frame", "unreadable")

    timeline_tracks = []
    overlays: dict[int, list] = {}
    # A matcher that keeps embeddings (EngineMatcher) can score track templates; the API's cannot.
    search = getattr(matcher, "template_candidates", None)
    track_threshold = getattr(matcher, "track_threshold", matcher.threshold)
    for number, track in enumerate(tracks, start=1):
        decision = name_track(
            track.detections, matcher.threshold, track_threshold, search, margin=margin, min_faces=min_faces
        )
        boxes = track_boxes(track, max_gap=step * 2)
        name = decision.identity or "unknown"
        text = f"{name} {decision.score:.2f}" if decision.identity else f"unknown #{number}"
        for frame, box in boxes.items():
            overlays.setdefault(frame, []).append((box, text, label_colour(decision.identity)))
        frames = list(boxes)
        timeline_tracks.append(
            {
                "track_id": number,
                "identity": decision.identity,
                "similarity": decision.similarity,
                "runner_up": (
                    {"identity": decision.runner_up[0], "similarity": decision.runner_up[1]}
                    if decision.runner_up
                    else None
                ),
                "template": (
                    {"identity": decision.template[0], "similarity": decision.template[1]}
                    if decision.template
                    else None
                ),
                # what each rule alone names: "frames" (all faces' similarities), "template"
                "rules": {"frames": decision.by_frames, "template": decision.by_template},
                "start": round(frames[0] / info.fps, 4),
                "end": round(frames[-1] / info.fps, 4),
                "faces": len(track.detections),
                "frames": frames,
                "boxes": [[round(v, 1) for v in boxes[f]] for f in frames],
            }
        )
    timeline = {
        "video": label,
        "fps": info.fps,
        "width": info.width,
        "height": info.height,
        "frames": frames_read,
        "stride": step,
        "matcher": matcher.source,
        "embedder": matcher.embedder,
        "threshold": matcher.threshold,
        "track_threshold": track_threshold if search is not None else None,
        "margin": margin,
        "min_faces": min_faces,
        "tracks": timeline_tracks,
    }
    kept = _best_faces(tracks, hooks.best_faces)
    if render:
        on_frame = _frame_hook(out, kept, hooks, frames_read)
        write_video(
            info,
            overlays,
            out / "annotated.mp4",
            codec=hooks.codec,
            on_frame=on_frame,
            show_progress=hooks.show_progress,
        )
    if kept:
        _write_best_faces(out, kept, matcher.embedder)
    write_json(out / "timeline.json", timeline)
    return timeline


def _best_faces(tracks: list, per_track: int) -> dict[int, list[Detection]]:
    """Per track number, ``per_track`` faces to enroll it by, chosen across its poses.

    A gallery of frontal faces only leaves the person unknown in profile next time, so the
    track's faces are grouped by the side the head is turned to (quality.yaw_side: left,
    frontal, right) and picked in turn from each group, best first: faces that pass the
    enrollment gate before those that do not, then by templates.face_weight (size, sharpness,
    pose) and detection score. Faces far from the track's template (another face the box slid
    onto) are never kept.
    """
    if per_track <= 0:
        return {}
    kept: dict[int, list[Detection]] = {}
    for number, track in enumerate(tracks, start=1):
        usable = _consistent_faces(track.detections)
        groups: dict[int, list[Detection]] = {}
        for det in usable:
            side = 0 if det.landmarks is None else yaw_side(det.landmarks)
            groups.setdefault(side, []).append(det)
        for group in groups.values():
            group.sort(key=lambda d: (not _enrollable(d), -face_weight(d) * d.score))
        # frontal first, then the side with the better best face
        order = sorted(groups, key=lambda side: (side != 0, not _enrollable(groups[side][0])))
        chosen: list[Detection] = []
        while len(chosen) < per_track and any(groups.values()):
            for side in order:
                if groups[side] and len(chosen) < per_track:
                    chosen.append(groups[side].pop(0))
        if chosen:
            kept[number] = sorted(chosen, key=lambda d: d.frame)
    return kept


def _consistent_faces(detections: list[Detection]) -> list[Detection]:
    """The faces with an embedding that agree with their track's template (no outliers)."""
    usable = [d for d in detections if d.embedding is not None]
    template = track_template(usable)
    if template is None:
        return []
    cosines = np.array([float(np.asarray(d.embedding) @ template.vector) for d in usable])
    return [d for d, c in zip(usable, cosines) if c >= np.median(cosines) - OUTLIER_DROP]


def _enrollable(det: Detection) -> bool:
    return not enrollment_problems(_quality(det)) if det.brightness is not None else True


def _quality(det: Detection) -> FaceQuality:
    return FaceQuality(det.box[2] - det.box[0], det.brightness or 0.0, det.sharpness or 0.0)


def _frame_hook(out: Path, kept: dict[int, list[Detection]], hooks: Hooks, total: int):
    """Pass two's per-frame work: progress, and cutting out the kept faces from their frames."""
    wanted: dict[int, list[tuple[int, int, Detection]]] = {}
    for number, dets in kept.items():
        for k, det in enumerate(dets):
            wanted.setdefault(det.frame, []).append((number, k, det))
    if wanted:
        (out / FACES_DIR).mkdir(exist_ok=True)

    def on_frame(index: int, frame: np.ndarray) -> None:
        if hooks.progress is not None:
            hooks.progress("rendering", index + 1, total)
        for number, k, det in wanted.get(index, ()):
            crop = crop_with_margin(frame, det.box, margin=0.25)
            cv2.imwrite(str(out / FACES_DIR / f"{number}_{k}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, 90])

    return on_frame


def _write_best_faces(out: Path, kept: dict[int, list[Detection]], embedder: str) -> None:
    rows: list[dict] = []
    vectors: list[np.ndarray] = []
    for number, dets in kept.items():
        for k, det in enumerate(dets):
            crop = out / FACES_DIR / f"{number}_{k}.jpg"
            rows.append(
                {
                    "track_id": number,
                    "row": len(vectors),
                    "frame": det.frame,
                    "box": [round(float(v), 1) for v in det.box],
                    "score": round(float(det.score), 4),
                    # what the enrollment gate looks at (None: a matcher that does not measure it)
                    "quality": _quality(det).to_dict() if det.brightness is not None else None,
                    "side": None if det.landmarks is None else yaw_side(det.landmarks),
                    "crop": f"{FACES_DIR}/{crop.name}" if crop.is_file() else None,
                }
            )
            vectors.append(np.asarray(det.embedding, dtype=np.float32))
    write_npy(out / FACES_EMBEDDINGS, np.stack(vectors))
    write_json(out / FACES_INDEX, {"embedder": embedder, "faces": rows})


def _track(path: Path, info: VideoInfo, matcher: FrameMatcher, step: int, hooks: Hooks) -> tuple[list, int]:
    """Pass one: analysed frames -> detections -> tracks. Returns the tracks and frames read."""
    tracker = Tracker(TrackerConfig.for_threshold(matcher.threshold))
    shots = ShotDetector()
    batch: list = []  # (index, rgb, is_cut)
    frames_read = 0

    def flush() -> None:
        if not batch:
            return
        results = matcher.analyze([rgb for _, rgb, _ in batch], [i for i, _, _ in batch])
        for (_, _, cut), detections in zip(batch, results):
            if cut:
                tracker.cut()
            tracker.update(detections)
        batch.clear()

    bar = tqdm(total=info.frame_count, desc="annotate", unit="frame", file=sys.stderr, disable=not hooks.show_progress)
    for index, frame in read_frames(path):
        frames_read = index + 1
        if hooks.progress is not None:
            hooks.progress("analysing", frames_read, info.frame_count)
        if index % step == 0:
            cut = shots.is_cut(frame)
            batch.append((index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), cut))
            if len(batch) == BATCH:
                flush()
        bar.update()
    flush()
    bar.close()
    return tracker.close(), frames_read
