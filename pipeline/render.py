"""Drawing named boxes onto the video: ``annotated.mp4`` (mp4v, the video's own size and rate)."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from .errors import PipelineError
from .video import VideoInfo, read_frames

NAMED = (60, 200, 60)  # BGR
UNKNOWN = (160, 160, 160)


def label_colour(identity: str | None) -> tuple[int, int, int]:
    return NAMED if identity else UNKNOWN


def draw(frame: np.ndarray, items: Sequence[tuple[tuple[float, float, float, float], str, tuple[int, int, int]]]) -> None:
    """Boxes with a filled caption above each (below it when the box touches the top)."""
    scale = max(0.4, min(frame.shape[:2]) / 720)
    thickness = max(1, round(2 * scale))
    for box, text, colour in items:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(frame, (x1, y1), (x2, y2), colour, thickness)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, thickness)
        top = y1 - th - base - 4 if y1 - th - base - 4 >= 0 else y2
        cv2.rectangle(frame, (x1, top), (x1 + tw + 6, top + th + base + 4), colour, -1)
        cv2.putText(frame, text, (x1 + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 0, 0), thickness, cv2.LINE_AA)


def write_video(
    info: VideoInfo,
    overlays: Mapping[int, Sequence[tuple[tuple[float, float, float, float], str, tuple[int, int, int]]]],
    out: Path,
) -> int:
    """Re-read the video and write it with ``overlays[frame index]`` drawn; returns frames written."""
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), info.fps, (info.width, info.height))
    if not writer.isOpened():
        raise PipelineError(f"cannot write {out}: OpenCV has no mp4v encoder here")
    written = 0
    try:
        for index, frame in tqdm(read_frames(info.path), total=info.frame_count, desc="render", unit="frame", file=sys.stderr):
            if frame.shape[1] != info.width or frame.shape[0] != info.height:
                frame = cv2.resize(frame, (info.width, info.height))
            draw(frame, overlays.get(index, ()))
            writer.write(frame)
            written += 1
    finally:
        writer.release()
    os.replace(tmp, out)
    return written
