"""The small JPEG kept of an enrolled face so people can see whom the gallery holds.

A crop of the face box with a margin, its longer side at most ``SIDE`` pixels: a few KB per face,
never the uploaded photo (which may show other people and places). Pure numpy/OpenCV on one face.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

SIDE = 96  # px: the size the site shows a face at (CSS 48 px at 2x pixel density)
MARGIN = 0.2  # of the box's width/height on each side: hair and chin, as a person recognises a face
QUALITY = 80  # JPEG quality: ~2-4 KB at 96 px, no visible blocking at that size


def face_thumbnail(rgb: np.ndarray, box: Sequence[float]) -> bytes | None:
    """A JPEG of the face at ``box`` (x1, y1, x2, y2) in an H x W x 3 RGB image; None when the box
    lies outside the image."""
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = MARGIN * (x2 - x1), MARGIN * (y2 - y1)
    left, top = max(0, int(np.floor(x1 - mx))), max(0, int(np.floor(y1 - my)))
    right, bottom = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
    if right <= left or bottom <= top:
        return None
    return _encode(rgb[top:bottom, left:right])


def _encode(crop: np.ndarray) -> bytes | None:
    """An RGB crop scaled down to ``SIDE`` and encoded as JPEG."""
    scale = min(1.0, SIDE / max(crop.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    return data.tobytes() if ok else None


def shrink_jpeg(data: bytes) -> bytes | None:
    """A face crop already cut (a video track's kept face, ~0.25 margin) as a thumbnail; None when
    it does not decode. For our own files only: the decode is not bounded like an upload's."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    return _encode(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
