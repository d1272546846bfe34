"""Cut each recognised face out of the uploaded photo, with a margin, as a small JPEG in memory.

"Name this face" on the result page must enroll exactly that face, but the site keeps no upload:
the crop travels in the page's form instead (see :mod:`web_frontend.naming`), and the API finds
the face again in it from the face's box within the crop. The margin matters: the API's detector
(MTCNN) needs the head and some background around a face to find it. Boxes are in the pixels of
the EXIF-oriented image, as the API gives them, so the photo is oriented the same way here.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from .drawing import open_upright

# Of the face's width and height, on each side: the crop is about twice the face, enough context
# for the detector's first stage and not so much that a neighbour's whole face comes with it.
CROP_MARGIN = 0.5
# Crops are scaled to at most this side (a face of ~160 px, more than the embedders' 150/160 px
# chips), so one crop is some tens of KB; smaller ones are enlarged to this minimum side so that
# the detector (minimum face 20 px) still finds a small face.
CROP_MAX_SIDE = 320
CROP_MIN_SIDE = 160
JPEG_QUALITY = 90
# A crowd photo gets forms for this many faces (in the API's order), so a page stays a few MB at most.
MAX_NAMEABLE_FACES = 20


@dataclass(frozen=True)
class FaceCrop:
    """One face cut out: the JPEG bytes and the face's box within them (x1, y1, x2, y2)."""

    jpeg: bytes
    box: tuple[float, float, float, float]
    width: int
    height: int

    @property
    def base64(self) -> str:
        return base64.b64encode(self.jpeg).decode("ascii")

    @property
    def box_text(self) -> str:
        """The box as the API's ``box`` form field reads it."""
        return ",".join(f"{v:.1f}" for v in self.box)


def _crop_one(img: Image.Image, box: Sequence[float]) -> FaceCrop | None:
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    if w <= 0 or h <= 0:
        return None
    left = max(0, int(x1 - CROP_MARGIN * w))
    top = max(0, int(y1 - CROP_MARGIN * h))
    right = min(img.width, int(x2 + CROP_MARGIN * w + 1))
    bottom = min(img.height, int(y2 + CROP_MARGIN * h + 1))
    if right <= left or bottom <= top:
        return None
    crop = img.crop((left, top, right, bottom))
    longest = max(crop.size)
    scale = min(CROP_MAX_SIDE / longest, max(1.0, CROP_MIN_SIDE / longest))
    if scale != 1.0:
        size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
        # Bilinear, not Lanczos: the API re-detects the face in this crop either way, and on a
        # 400x500 crop Lanczos took 2.9 ms against 1.3 ms, per face, on every result page.
        crop = crop.resize(size, Image.Resampling.BILINEAR if scale < 1 else Image.Resampling.BICUBIC)
    out = io.BytesIO()
    crop.save(out, format="JPEG", quality=JPEG_QUALITY)
    inner = (
        max(0.0, (x1 - left) * scale),
        max(0.0, (y1 - top) * scale),
        min(float(crop.width), (x2 - left) * scale),
        min(float(crop.height), (y2 - top) * scale),
    )
    return FaceCrop(out.getvalue(), inner, crop.width, crop.height)


def cut_faces(photo: bytes | Image.Image, faces: Sequence[dict[str, Any]]) -> list[FaceCrop | None]:
    """A crop per face of the API's answer (None past :data:`MAX_NAMEABLE_FACES` or for a bad box).

    ``photo`` is the upload's bytes or the image :func:`web_frontend.drawing.open_upright` decoded.
    """
    img = (open_upright(photo) if isinstance(photo, bytes) else photo).convert("RGB")
    crops: list[FaceCrop | None] = []
    for index, face in enumerate(faces):
        box = face.get("box")
        ok = (
            index < MAX_NAMEABLE_FACES
            and isinstance(box, (list, tuple))
            and len(box) == 4
            and all(isinstance(v, (int, float)) for v in box)
        )
        crops.append(_crop_one(img, box) if ok and box is not None else None)
    return crops
