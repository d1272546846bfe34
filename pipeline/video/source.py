"""Video input: resolve a path or URL to a local file, then read it frame by frame with OpenCV.

A URL is downloaded once into a temporary folder that the caller owns (``open_source`` is a
context manager), so extraction and annotation read the same bytes and nothing is left behind.
YouTube pages are not video files; they go through ``yt-dlp`` when it is installed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np

from ..errors import PipelineError

YOUTUBE_HOSTS = ("youtube.com", "www.youtube.com", "m.youtube.com", "youtu.be", "music.youtube.com")
DOWNLOAD_TIMEOUT_S = 30.0  # per network read, not for the whole file


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


def is_url(source: str) -> bool:
    return urlparse(source).scheme in ("http", "https")


def is_youtube(source: str) -> bool:
    return is_url(source) and (urlparse(source).hostname or "").lower() in YOUTUBE_HOSTS


@contextlib.contextmanager
def open_source(source: str) -> Iterator[Path]:
    """A local path for ``source``: the file itself, or a temporary download removed afterwards."""
    if not is_url(source):
        path = Path(source)
        if not path.is_file():
            raise PipelineError(f"video not found: {source}")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="pipeline-video-") as tmp:
        if is_youtube(source):
            yield _download_youtube(source, Path(tmp))
        else:
            yield _download_http(source, Path(tmp))


def _download_http(url: str, folder: Path) -> Path:
    import requests
    from tqdm import tqdm

    suffix = Path(urlparse(url).path).suffix or ".mp4"
    target = folder / f"video{suffix}"
    try:
        with requests.get(url, stream=True, timeout=DOWNLOAD_TIMEOUT_S) as response:
            if response.status_code != 200:
                raise PipelineError(f"could not download {url}: HTTP {response.status_code}")
            total = int(response.headers.get("content-length") or 0) or None
            with (
                open(target, "wb") as fh,
                tqdm(total=total, unit="B", unit_scale=True, desc="download", file=sys.stderr, leave=False) as bar,
            ):
                for chunk in response.iter_content(chunk_size=1 << 20):
                    fh.write(chunk)
                    bar.update(len(chunk))
    except requests.RequestException as exc:
        raise PipelineError(f"could not download {url}: {exc}") from None
    return target


def _download_youtube(url: str, folder: Path) -> Path:
    """Hand a YouTube URL to yt-dlp (module or command), asking for an mp4 of at most 720p."""
    fmt = "best[ext=mp4][height<=720]/best[height<=720]/best"
    template = str(folder / "video.%(ext)s")
    if importlib.util.find_spec("yt_dlp") is not None:
        import yt_dlp  # type: ignore[import-not-found]

        try:
            with yt_dlp.YoutubeDL({"format": fmt, "outtmpl": template, "quiet": True, "noprogress": True}) as ydl:
                ydl.download([url])
        except Exception as exc:  # yt-dlp raises its own DownloadError and friends
            raise PipelineError(f"yt-dlp could not download {url}: {exc}") from None
    elif shutil.which("yt-dlp"):
        done = subprocess.run(["yt-dlp", "-f", fmt, "-o", template, url], capture_output=True, text=True)
        if done.returncode != 0:
            raise PipelineError(f"yt-dlp could not download {url}: {done.stderr.strip()[-500:]}")
    else:
        raise PipelineError(
            f"{url} is a YouTube page, not a video file: install yt-dlp (pip install yt-dlp) to download it, "
            "or download the video yourself and pass the file"
        )
    found = sorted(folder.glob("video.*"))
    if not found:
        raise PipelineError(f"yt-dlp reported success but wrote no file for {url}")
    return found[0]


def probe(path: Path) -> VideoInfo:
    """Open ``path`` and read its properties; a file OpenCV cannot decode is a ``PipelineError``."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise PipelineError(f"cannot read video {path}: not a video file OpenCV can decode")
        ok, frame = capture.read()
        if not ok or frame is None:
            raise PipelineError(f"cannot read video {path}: no decodable frame")
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        if not np.isfinite(fps) or fps <= 0:
            raise PipelineError(f"cannot read video {path}: the file states no frame rate")
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
        raise PipelineError(f"cannot read video {path}")
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
