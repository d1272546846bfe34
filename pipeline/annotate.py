"""``annotate``: track faces through a video, name each track once, write the video and a timeline.

Pass one reads the video, analyses every ``stride``-th frame (in batches, through a local gallery
or the API), watches for shot cuts and links the faces into tracks. Each track is then named from
all its faces (``tracking.decide_identity``). Pass two re-reads the video (cheaper than holding
it in memory) and draws every track on every frame it covers, interpolating boxes across the
skipped frames. ``timeline.json`` lists the tracks with their frames, boxes and times.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
from tqdm import tqdm

from .errors import PipelineError
from .render import label_colour, write_video
from .rundir import write_json
from .shots import ShotDetector
from .tracking import Tracker, TrackerConfig, decide_identity, track_boxes
from .video import open_source, probe, read_frames

ANALYSED_PER_SECOND = 10.0  # default analysis rate: faces move little in a tenth of a second
BATCH = 16


def default_stride(fps: float) -> int:
    return max(1, round(fps / ANALYSED_PER_SECOND))


def annotate(
    source: str,
    out: Path,
    api: str | None = None,
    gallery: Path | None = None,
    stride: int | None = None,
    threshold: float | None = None,
    margin: float = 0.02,
    min_faces: int = 3,
    embedder: str | None = None,
    render: bool = True,
) -> dict:
    """Annotate ``source`` into run folder ``out``; returns the timeline."""
    if (api is None) == (gallery is None):
        raise PipelineError("give exactly one of --api URL or --gallery FILE")
    if stride is not None and stride < 1:
        raise PipelineError("--stride must be 1 or more")
    out.mkdir(parents=True, exist_ok=True)
    with open_source(source) as path:
        info = probe(path)
        step = stride or default_stride(info.fps)
        if gallery is not None:
            from .matchers import LocalMatcher

            matcher = LocalMatcher(gallery, embedder=embedder, threshold=threshold)
        else:
            from .matchers import ApiMatcher

            matcher = ApiMatcher(api, threshold=threshold)
        try:
            tracks, frames_read = _track(path, info, matcher, step)
        finally:
            matcher.close()
        if frames_read == 0:
            raise PipelineError(f"cannot read video {source}: no decodable frame")

        timeline_tracks = []
        overlays: dict[int, list] = {}
        for number, track in enumerate(tracks, start=1):
            decision = decide_identity(track.detections, matcher.threshold, margin=margin, min_faces=min_faces)
            boxes = track_boxes(track, max_gap=step * 2)
            label = decision.identity or "unknown"
            text = f"{label} {decision.similarity:.2f}" if decision.identity else f"unknown #{number}"
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
                    "start": round(frames[0] / info.fps, 4),
                    "end": round(frames[-1] / info.fps, 4),
                    "faces": len(track.detections),
                    "frames": frames,
                    "boxes": [[round(v, 1) for v in boxes[f]] for f in frames],
                }
            )
        timeline = {
            "video": source,
            "fps": info.fps,
            "width": info.width,
            "height": info.height,
            "frames": frames_read,
            "stride": step,
            "matcher": matcher.source,
            "embedder": matcher.embedder,
            "threshold": matcher.threshold,
            "margin": margin,
            "min_faces": min_faces,
            "tracks": timeline_tracks,
        }
        if render:
            write_video(info, overlays, out / "annotated.mp4")
    write_json(out / "timeline.json", timeline)
    return timeline


def _track(path: Path, info, matcher, step: int) -> tuple[list, int]:
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

    bar = tqdm(total=info.frame_count, desc="annotate", unit="frame", file=sys.stderr)
    for index, frame in read_frames(path):
        frames_read = index + 1
        if index % step == 0:
            cut = shots.is_cut(frame)
            batch.append((index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), cut))
            if len(batch) == BATCH:
                flush()
        bar.update()
    flush()
    bar.close()
    return tracker.close(), frames_read
