"""Network cameras configured by the operator (``FACE_CAMERAS``), watched without end.

Each camera has a reader thread that decodes its stream with PyAV (FFmpeg) under read timeouts,
reconnecting with backoff when the stream goes away, and an analyser thread that takes the newest
decoded frame (latest wins: the capture never waits for the analysis) and runs it through a
:class:`~inference_service.analysis.live.LiveSession`. A camera's health is visible: its state
(connecting, live, reconnecting, stopped), frames in, analysed and dropped per second, and lag.
No URL ever comes from a request: sources are read from the settings only.
"""

from .manager import Cameras, UnknownCameraError
from .sources import parse_cameras

__all__ = ["Cameras", "UnknownCameraError", "parse_cameras"]
