"""``extract``: one frame every S seconds of a time window, written as JPEGs with ``frames.json``.

``frames.json`` records for every frame its index in the video and its time (index / fps), which
is what every later step (faces, clusters, plots) refers to.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2
from tqdm import tqdm

from inference_service.analysis.source import VideoInfo, probe, read_frames
from inference_service.atomic import write_json

from ..errors import PipelineError
from .fetch import open_source
from .rundir import RunDir

JPEG_QUALITY = 95  # frames are re-read for detection: keep compression artefacts out of the way


def extract(source: str, out: Path, start: float = 0.0, duration: float | None = None, every: float = 1.0) -> dict:
    """Write the sampled frames of ``source`` into run folder ``out``; returns ``frames.json``."""
    if start < 0:
        raise PipelineError("--start must be 0 or more seconds")
    if duration is not None and duration <= 0:
        raise PipelineError("--duration must be a positive number of seconds")
    run = RunDir(out)
    with open_source(source) as path:
        info = probe(path)
        wanted = sample_indices(info, start, duration, every)
        if not wanted:
            window = f"{start:g} s" + ("" if duration is None else f" to {start + duration:g} s")
            raise PipelineError(
                f"no frames in the window starting at {window}: the video is {info.duration:.2f} s long "
                f"({info.frame_count} frames at {info.fps:.3f} fps)"
            )
        if run.frames_dir.exists():
            shutil.rmtree(run.frames_dir)  # frames of an earlier window must not mix with these
        run.frames_dir.mkdir(parents=True)
        frames = []
        bar = tqdm(total=len(wanted), desc="extract", unit="frame", file=sys.stderr)
        for index, frame in read_frames(path, set(wanted)):
            name = f"{index:06d}.jpg"
            if not cv2.imwrite(str(run.frames_dir / name), frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
                raise PipelineError(f"cannot write {run.frames_dir / name}")
            frames.append({"index": index, "time": round(index / info.fps, 4), "file": f"frames/{name}"})
            bar.update()
        bar.close()
    if not frames:
        raise PipelineError(f"cannot read video {source}: no frame of the window could be decoded")
    meta = {
        "video": source,
        "fps": info.fps,
        "width": info.width,
        "height": info.height,
        "frame_count": info.frame_count,
        "start": start,
        "duration": duration,
        "every": every,
        "frames": frames,
    }
    write_json(run.frames_json, meta)
    return meta


def sample_indices(info: VideoInfo, start: float, duration: float | None, every: float) -> list[int]:
    """Frame indices for one frame every ``every`` seconds of ``[start, start + duration)``.

    Each sample time is rounded to the nearest frame; a step below one frame period gives every
    frame once. Frames at or past the window's end (or the container's frame count) are left out.
    """
    if every <= 0:
        raise PipelineError("--every must be a positive number of seconds")
    end = info.duration if duration is None else min(info.duration, start + duration)
    out: list[int] = []
    k = 0
    while True:
        t = start + k * every
        if t >= end - 1e-9:
            break
        index = int(round(t * info.fps))
        if index < info.frame_count and index / info.fps < end - 1e-9 and (not out or index > out[-1]):
            out.append(index)
        k += 1
    return out
