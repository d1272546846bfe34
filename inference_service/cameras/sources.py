"""``FACE_CAMERAS``: a JSON object mapping a camera's name to its source, or the path of a file
holding one, e.g. ``{"door": "rtsp://cam.local/stream1", "hall": "http://10.0.0.7/video.mjpg"}``.

A source is an RTSP URL, an HTTP(S) URL of an MJPEG or MPEG-TS stream, or a local device
(``/dev/video0``). The settings are the only place a source can come from.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SCHEMES = ("rtsp", "rtsps", "http", "https")


def parse_cameras(text: str | None) -> dict[str, str]:
    """Name -> source; ``ValueError`` saying what is wrong, so a typo fails at start."""
    if not text or not text.strip():
        return {}
    raw = text.strip()
    if not raw.startswith("{"):
        path = Path(raw).expanduser()
        if not path.is_file():
            raise ValueError(f"FACE_CAMERAS is neither a JSON object nor a readable file: {raw!r}")
        raw = path.read_text(encoding="utf-8")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"FACE_CAMERAS is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("FACE_CAMERAS must be a JSON object mapping camera names to sources")
    cameras: dict[str, str] = {}
    for name, source in value.items():
        if not NAME.match(name):
            raise ValueError(f"camera name {name!r}: 1-64 letters, digits, _ . - (starting with a letter or digit)")
        if not isinstance(source, str) or not _valid_source(source):
            raise ValueError(f"camera {name!r}: the source must be an rtsp://, http(s):// URL or a /dev/ device")
        cameras[name] = source
    return cameras


def _valid_source(source: str) -> bool:
    if source.startswith("/dev/"):
        return True
    parts = urlsplit(source)
    return parts.scheme in SCHEMES and bool(parts.hostname)


def redacted(source: str) -> str:
    """The source without a password (``rtsp://user:***@host/...``), as the API shows it."""
    parts = urlsplit(source)
    if parts.password is None:
        return source
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
