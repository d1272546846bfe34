"""Opening a camera's stream with PyAV (FFmpeg's demuxers and decoders), with timeouts.

FFmpeg blocks in a read for as long as a stalled server keeps the socket open; PyAV's
``timeout=(open, read)`` interrupts it, so a camera that stops sending is noticed within the read
timeout and the watcher can reconnect or stop.
"""

from __future__ import annotations

from collections.abc import Iterator

import av

from ..analysis.errors import AnalysisError


def open_frames(source: str, timeout_s: float) -> Iterator[av.VideoFrame]:
    """Decoded frames of ``source`` until it ends; ``AnalysisError`` when it has no video."""
    options: dict[str, str] = {}
    fmt = None
    if source.startswith(("rtsp://", "rtsps://")):
        options["rtsp_transport"] = "tcp"  # no lost UDP packets smearing frames; passes firewalls
    elif source.startswith("/dev/"):
        fmt = "v4l2"
    container = av.open(source, format=fmt, options=options, timeout=(timeout_s, timeout_s))
    try:
        if not container.streams.video:
            raise AnalysisError(f"the source has no video stream ({container.format.name})", "unsupported")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        yield from container.decode(stream)
    finally:
        container.close()
