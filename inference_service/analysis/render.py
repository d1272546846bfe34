"""Drawing named boxes onto the video: ``annotated.mp4``, the video's own size and rate.

Two encoders: OpenCV's ``mp4v`` (MPEG-4 Part 2: fast, what the CLI writes, but browsers do not
play it) and H.264 through the ffmpeg binary that the ``imageio-ffmpeg`` wheel ships (libx264;
OpenCV's own FFmpeg here has no software H.264 encoder and its VP8 writer is 5x slower than x264
``veryfast`` on the stage clip). The API's video jobs write H.264 so Chromium plays the result.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..atomic import atomic_path
from .errors import AnalysisError
from .source import VideoInfo, read_frames

NAMED = (60, 200, 60)  # BGR
UNKNOWN = (160, 160, 160)
CODECS = ("mp4v", "h264")

# Called with (frame index, the frame before drawing); may raise to stop the rendering.
FrameHook = Callable[[int, np.ndarray], None]


def label_colour(identity: str | None) -> tuple[int, int, int]:
    return NAMED if identity else UNKNOWN


FONT = cv2.FONT_HERSHEY_SIMPLEX
# A caption's letters are this share of the frame's short side, and never under MIN_TEXT_PX: 2.5%
# is 54 px on a 4K frame and 27 px at 1080p; at 640x360 the floor of 14 px applies. (The old rule,
# 0.6 x short side / 720, drew 8 px letters at 640x360, too small to read in a browser.)
TEXT_SHARE = 0.025
MIN_TEXT_PX = 14
_FONT_PX_AT_SCALE_1 = cv2.getTextSize("Hg", FONT, 1.0, 1)[0][1]


def caption_font(frame_shape: tuple[int, ...]) -> tuple[float, int]:
    """(OpenCV font scale, stroke thickness) for captions sized to the frame."""
    text_px = max(MIN_TEXT_PX, TEXT_SHARE * min(frame_shape[:2]))
    return text_px / _FONT_PX_AT_SCALE_1, max(1, round(text_px / 12))


def draw(
    frame: np.ndarray, items: Sequence[tuple[tuple[float, float, float, float], str, tuple[int, int, int]]]
) -> None:
    """Boxes with a filled caption above each (below it when the box touches the top)."""
    font_scale, thickness = caption_font(frame.shape)
    for box, text, colour in items:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(frame, (x1, y1), (x2, y2), colour, thickness)
        (tw, th), base = cv2.getTextSize(text, FONT, font_scale, thickness)
        top = y1 - th - base - 4 if y1 - th - base - 4 >= 0 else y2
        cv2.rectangle(frame, (x1, top), (x1 + tw + 6, top + th + base + 4), colour, -1)
        cv2.putText(
            frame,
            text,
            (x1 + 3, top + th + 2),
            FONT,
            font_scale,
            (0, 0, 0),
            thickness,
            cv2.LINE_AA,
        )


class _OpenCVWriter:
    def __init__(self, path: Path, info: VideoInfo) -> None:
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), info.fps, (info.width, info.height))
        if not self._writer.isOpened():
            raise AnalysisError(f"cannot write {path}: OpenCV has no mp4v encoder here")

    def write(self, frame: np.ndarray) -> None:
        self._writer.write(frame)

    def close(self, ok: bool) -> None:
        self._writer.release()


class _H264Writer:
    """Raw BGR frames piped into ffmpeg/libx264: yuv420p, ``+faststart`` so playback starts at once."""

    def __init__(self, path: Path, info: VideoInfo, threads: int = 1) -> None:
        try:
            import imageio_ffmpeg
        except ImportError:
            raise AnalysisError("H.264 output needs the imageio-ffmpeg package (pip install imageio-ffmpeg)") from None
        # x264 wants even dimensions for yuv420p: pad one pixel when needed.
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "bgr24",
            "-s",
            f"{info.width}x{info.height}",
            "-r",
            f"{info.fps:.6f}",
            "-i",
            "-",
            "-vf",
            "pad=ceil(iw/2)*2:ceil(ih/2)*2",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "23",
            "-pix_fmt",
            "yuv420p",
            "-threads",
            str(threads),
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            str(path),
        ]
        self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, frame: np.ndarray) -> None:
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())  # type: ignore[union-attr]
        except BrokenPipeError:
            raise AnalysisError(f"ffmpeg stopped: {self._stderr()}") from None

    def _stderr(self) -> str:
        try:
            return (self._proc.stderr.read() or b"").decode(errors="replace").strip()[-500:]  # type: ignore[union-attr]
        except (OSError, ValueError):
            return ""

    def close(self, ok: bool) -> None:
        if not ok:
            self._proc.kill()
            self._proc.wait()
            return
        try:
            self._proc.stdin.close()  # type: ignore[union-attr]
        except BrokenPipeError:
            pass
        if self._proc.wait() != 0:
            raise AnalysisError(f"ffmpeg could not encode the video: {self._stderr()}")


def write_video(
    info: VideoInfo,
    overlays: Mapping[int, Sequence[tuple[tuple[float, float, float, float], str, tuple[int, int, int]]]],
    out: Path,
    codec: str = "mp4v",
    on_frame: FrameHook | None = None,
    show_progress: bool = True,
) -> int:
    """Re-read the video and write it with ``overlays[frame index]`` drawn; returns frames written.

    The file appears under its name only when complete (written to a temporary name first).
    """
    if codec not in CODECS:
        raise AnalysisError(f"unknown codec {codec!r}: use one of {', '.join(CODECS)}")
    with atomic_path(out) as tmp:
        writer = _H264Writer(tmp, info) if codec == "h264" else _OpenCVWriter(tmp, info)
        written = 0
        ok = False
        try:
            frames = read_frames(info.path)
            if show_progress:
                frames = tqdm(frames, total=info.frame_count, desc="render", unit="frame", file=sys.stderr)
            for index, frame in frames:
                if frame.shape[1] != info.width or frame.shape[0] != info.height:
                    frame = cv2.resize(frame, (info.width, info.height))
                if on_frame is not None:
                    on_frame(index, frame)
                draw(frame, overlays.get(index, ()))
                writer.write(frame)
                written += 1
            ok = True
        finally:
            writer.close(ok)
    return written
