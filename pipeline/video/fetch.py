"""The command line's video input: a path or a URL resolved to a local file.

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
from pathlib import Path
from urllib.parse import urlparse

from ..errors import PipelineError

YOUTUBE_HOSTS = ("youtube.com", "www.youtube.com", "m.youtube.com", "youtu.be", "music.youtube.com")
DOWNLOAD_TIMEOUT_S = 30.0  # per network read, not for the whole file


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
        import yt_dlp

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
