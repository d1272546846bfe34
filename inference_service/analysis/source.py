"""Reading a local video file frame by frame with OpenCV, and what its container says about it.

The analysis core never fetches anything: a URL is the command line's business
(``pipeline/video/fetch.py``), and the API only reads files it received itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import AnalysisError


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video; ``frame_count`` may be an estimate."""

    path: Path
    fps: float
    width: int
    height: int
    frame_count: int

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0


def probe(path: Path) -> VideoInfo:
    """Open ``path`` and read its properties; a file OpenCV cannot decode is a ``AnalysisError``."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise AnalysisError(f"cannot read video {path}: not a video file OpenCV can decode", "unsupported")
        ok, frame = capture.read()
        if not ok or frame is None:
            raise AnalysisError(f"cannot read video {path}: no decodable frame", "unreadable")
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        if not np.isfinite(fps) or fps <= 0:
            raise AnalysisError(f"cannot read video {path}: the file states no frame rate", "unreadable")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        height, width = frame.shape[:2]
        return VideoInfo(path, fps, width, height, max(count, 1))
    finally:
        capture.release()


def read_frames(path: Path, wanted: set[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, BGR frame)`` in order, for every frame or only the ``wanted`` indices.

    Frames are read sequentially (``grab`` without decoding the unwanted ones to RGB) because
    seeking by index is not frame-exact with every codec; stops after the last wanted frame.
    """
    if wanted is not None and not wanted:
        return
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise AnalysisError(f"cannot read video {path}", "unreadable")
    last = max(wanted) if wanted else None
    index = 0
    try:
        while last is None or index <= last:
            if not capture.grab():
                break
            if wanted is None or index in wanted:
                ok, frame = capture.retrieve()
                if not ok or frame is None:
                    break
                yield index, frame
            index += 1
    finally:
        capture.release()
