"""Receiving a video onto disk, bounded, and deciding whether it may become a job.

How the bytes arrive (HTTP, multipart) is the API's business (``api/video_upload.py``); here a
:class:`VideoSink` writes them to the job's folder as they come, counting them, and stops at
``FACE_MAX_VIDEO_MB``; :func:`admit_video` then probes the file and refuses what the service will
not analyse: no video, a single picture, too long, or frames larger than ``FACE_MAX_PIXELS``
(an 8000x8000 MJPEG of a few MB would otherwise cost gigabytes of memory per decoded frame).
Every refusal is a :class:`~.errors.VideoError` of a kind; nothing here knows HTTP.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import BinaryIO

from ..analysis.errors import AnalysisError
from ..analysis.source import VideoInfo, probe
from .errors import VideoError, VideoErrorKind

MIB = 1024 * 1024
DISK_FULL = "the disk holding FACE_VIDEO_DIR is full: the video was not kept; free space there, then send it again"


def too_large(limit_mb: float) -> VideoError:
    return VideoError(
        VideoErrorKind.TOO_LARGE, f"the video is larger than the {limit_mb:g} MiB limit (FACE_MAX_VIDEO_MB)"
    )


def _disk_error(exc: OSError) -> VideoError | None:
    """A full disk (or quota) is the operator's to fix, not a bad upload; None for other errors."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return VideoError(VideoErrorKind.DISK_FULL, DISK_FULL)
    return None


class VideoSink:
    """The bytes of one uploaded video, written to ``target`` as they arrive and counted."""

    def __init__(self, target: Path, limit_mb: float) -> None:
        self.target = target
        self.limit_mb = limit_mb
        self.max_bytes = int(limit_mb * MIB)
        self.size = 0
        self._fh: BinaryIO | None = None

    def open(self) -> None:
        try:
            self._fh = open(self.target, "wb")
        except OSError as exc:
            raise _disk_error(exc) or exc from None

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise too_large(self.limit_mb)
        if self._fh is None:
            raise RuntimeError("VideoSink.write before open")
        try:
            self._fh.write(data)
        except OSError as exc:
            raise _disk_error(exc) or exc from None

    def close(self) -> None:
        """Flush and close; the data is on disk (a full disk noticed at the flush is reported too)."""
        if self._fh is None:
            return
        fh, self._fh = self._fh, None
        try:
            fh.close()
        except OSError as exc:
            raise _disk_error(exc) or exc from None

    def check_received(self) -> None:
        if self.size == 0:
            raise VideoError(VideoErrorKind.EMPTY, "the uploaded video is empty")


def admit_video(path: Path, max_seconds: float, max_pixels: int) -> VideoInfo:
    """The video's properties, or the reason it is refused (not a video, too long, frames too large)."""
    try:
        info = probe(path)
    except AnalysisError:
        raise VideoError(
            VideoErrorKind.NOT_A_VIDEO, "the upload is not a video file that can be decoded (try MP4 or WebM)"
        ) from None
    if info.frame_count < 2:
        raise VideoError(VideoErrorKind.NOT_A_VIDEO, "the upload is a single picture, not a video")
    pixels = info.width * info.height
    if pixels > max_pixels:
        raise VideoError(
            VideoErrorKind.FRAMES_TOO_LARGE,
            f"the video's frames are {info.width}x{info.height} = {pixels:,} pixels; "
            f"the limit is {max_pixels:,} (FACE_MAX_PIXELS)",
        )
    if info.duration > max_seconds:
        raise VideoError(
            VideoErrorKind.TOO_LONG,
            f"the video lasts {info.duration:.0f} s; the limit is {max_seconds:g} s (FACE_MAX_VIDEO_SECONDS)",
        )
    return info
