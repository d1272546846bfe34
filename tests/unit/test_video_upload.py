"""Receiving a video below the API: the sink's byte and disk limits, the admission check, the
mapping of its error kinds to HTTP in ``api/errors.py``, and the layer rule that keeps HTTP out."""

from __future__ import annotations

import ast
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference_service.api.errors import VIDEO_ERROR_STATUS
from inference_service.videos.errors import VideoError, VideoErrorKind
from inference_service.videos.upload import VideoSink, admit_video

REPO = Path(__file__).resolve().parents[2]
HTTP_PACKAGES = ("fastapi", "starlette", "python_multipart", "multipart")


def _video(path: Path, size: tuple[int, int], frames: int = 3, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for k in range(frames):
        writer.write(np.full((size[1], size[0], 3), (40 * k) % 256, np.uint8))
    writer.release()
    return path


def test_sink_stops_at_the_limit_and_keeps_no_more(tmp_path):
    sink = VideoSink(tmp_path / "v", limit_mb=1)
    sink.open()
    sink.write(b"x" * (1024 * 1024))
    with pytest.raises(VideoError) as info:
        sink.write(b"x")
    sink.close()
    assert info.value.kind is VideoErrorKind.TOO_LARGE and "1 MiB" in info.value.detail
    assert (tmp_path / "v").stat().st_size == 1024 * 1024


def test_a_full_disk_is_reported_as_such():
    sink = VideoSink(Path("/dev/full"), limit_mb=10)  # every write there fails with ENOSPC
    sink.open()
    with pytest.raises(VideoError) as info:
        sink.write(b"x" * 100_000)  # larger than the buffer: reaches the device at once
        sink.close()
    assert info.value.kind is VideoErrorKind.DISK_FULL
    assert VIDEO_ERROR_STATUS[info.value.kind] == 507


def test_frames_over_the_pixel_limit_are_refused_naming_size_and_limit(tmp_path):
    path = _video(tmp_path / "v.avi", (64, 48))
    assert admit_video(path, max_seconds=60, max_pixels=64 * 48).frame_count == 3
    with pytest.raises(VideoError) as info:
        admit_video(path, max_seconds=60, max_pixels=64 * 48 - 1)
    assert info.value.kind is VideoErrorKind.FRAMES_TOO_LARGE
    assert "64x48" in info.value.detail and "3,071" in info.value.detail
    assert VIDEO_ERROR_STATUS[info.value.kind] == 413


def test_no_video_and_too_long_are_refused(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 5000)
    with pytest.raises(VideoError) as info:
        admit_video(junk, max_seconds=60, max_pixels=10**8)
    assert info.value.kind is VideoErrorKind.NOT_A_VIDEO
    long = _video(tmp_path / "long.avi", (32, 32), frames=30, fps=1.0)
    with pytest.raises(VideoError) as info:
        admit_video(long, max_seconds=20, max_pixels=10**8)
    assert info.value.kind is VideoErrorKind.TOO_LONG and "20 s" in info.value.detail


def test_every_video_error_kind_has_a_status():
    assert set(VIDEO_ERROR_STATUS) == set(VideoErrorKind)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_nothing_below_the_api_imports_http():
    package = REPO / "inference_service"
    offenders = {
        str(path.relative_to(REPO)): sorted(_imports(path) & set(HTTP_PACKAGES))
        for path in package.rglob("*.py")
        if package / "api" not in path.parents
    }
    assert {k: v for k, v in offenders.items() if v} == {}
