"""Draw each recognised face's box and label onto the uploaded photo, in memory.

The result goes back to the browser inline as a ``data:`` URL, so no upload and no drawing is ever
written to disk or kept after the response. Boxes come from the API in the pixels of the image it
decoded, which applies the EXIF orientation; this module does the same so the boxes line up.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps

KNOWN_COLOUR = (46, 160, 67)  # green: a gallery match at or above the threshold
UNKNOWN_COLOUR = (230, 120, 20)  # orange: no identity above the threshold
TEXT_COLOUR = (255, 255, 255)
# Photos are shown at most this wide/high: enough for a desktop screen, and a large upload does
# not turn into a multi-megabyte page (the boxes are scaled with the image).
DISPLAY_MAX_SIDE = 1600
JPEG_QUALITY = 88


Rect = tuple[float, float, float, float]


@dataclass(frozen=True)
class FaceLabel:
    """Where a face's label went on the drawn image (its pixels), and what it says."""

    number: int  # the face's number: the table's ``#`` and the "Face N" naming form
    text: str  # "1 obama 0.953"; just "1" where the whole label found no free place
    rect: Rect


@dataclass(frozen=True)
class Annotated:
    """The drawn image, ready for an ``<img src=...>``, and where each face's label is."""

    data: bytes
    mime: str
    width: int
    height: int
    labels: tuple[FaceLabel, ...] = ()

    @property
    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


def similarity_text(value: object) -> str:
    """Every similarity the site shows, on the image, in the table and in the forms, rounded alike.

    Three decimals: thresholds are that fine (0.926), so "1.00" beside a table's 0.995 would mislead.
    """
    return f"{value:.3f}" if isinstance(value, (int, float)) else "–"


def face_label(face: dict[str, Any]) -> str:
    """``"obama 0.953"`` for a match, ``"unknown 0.612"`` (best similarity) or plain ``"unknown"``."""
    identity = face.get("identity")
    similarity = face.get("similarity")
    name = identity if identity else "unknown"
    if isinstance(similarity, (int, float)) and (identity or face.get("candidates")):
        return f"{name} {similarity_text(similarity)}"
    return name


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _overlap_area(a: Rect, b: Rect) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _spots(box: Rect, w: float, h: float, size: tuple[int, int]) -> list[Rect]:
    """Where a label of ``w`` x ``h`` may go for ``box``, best first, each moved inside the image."""
    x1, y1, x2, y2 = box
    corners = [
        (x1, y1 - h),  # above, left-aligned: where a reader looks first
        (x1, y2),  # below
        (x2 - w, y1 - h),  # above, right-aligned
        (x2 - w, y2),  # below, right-aligned
        (x1 - w, y1),  # left of the box
        (x2, y1),  # right of the box
        (x1, y1),  # inside its top edge
    ]
    width, height = size
    spots = []
    for left, top in corners:
        left = min(max(0.0, left), max(0.0, width - w))
        top = min(max(0.0, top), max(0.0, height - h))
        spots.append((left, top, left + w, top + h))
    return spots


def place_labels(
    boxes: Sequence[Rect],
    texts: Sequence[str],
    measure: Callable[[str], tuple[float, float]],
    size: tuple[int, int],
) -> list[FaceLabel]:
    """A label per box, numbered from 1 in the given order, none on another label or on another face.

    Each label tries the places of :func:`_spots` in turn with its whole text, then with its number
    only; a face with no free place at all (a crowd) gets its number where it covers the least.
    """
    placed: list[FaceLabel] = []
    for index, (box, text) in enumerate(zip(boxes, texts)):
        number = index + 1
        others = [b for i, b in enumerate(boxes) if i != index]
        taken = [label.rect for label in placed] + others
        choice: FaceLabel | None = None
        for wording in (f"{number} {text}", str(number)):
            w, h = measure(wording)
            free = [r for r in _spots(box, w, h, size) if not any(_overlaps(r, t) for t in taken)]
            if free:
                choice = FaceLabel(number, wording, free[0])
                break
        if choice is None:
            w, h = measure(str(number))
            best = min(_spots(box, w, h, size), key=lambda r: sum(_overlap_area(r, t) for t in taken))
            choice = FaceLabel(number, str(number), best)
        placed.append(choice)
    return placed


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def open_upright(image_bytes: bytes) -> Image.Image:
    """The uploaded photo decoded once, EXIF orientation applied, as the API saw it.

    The result page both draws on the photo and cuts each face out of it; decoding it once for
    both saves a full decode per page (about 13 ms of a 1280x720 JPEG here).
    """
    with Image.open(io.BytesIO(image_bytes)) as opened:
        img = ImageOps.exif_transpose(opened) or opened
        img.load()
        return img


def annotate(photo: bytes | Image.Image, faces: Sequence[dict[str, Any]]) -> Annotated:
    """Draw a box and a numbered label per face on the photo and encode it as JPEG (PNG if it has alpha).

    Face N of ``faces`` is labelled "N name similarity" (the table's row N, the form "Face N"),
    placed by :func:`place_labels` so that no label hides another or a neighbour's face.

    ``photo`` is the upload's bytes or :func:`open_upright`'s image (left unchanged).
    ``faces`` are the API's ``/recognize`` faces: ``box`` [x1, y1, x2, y2] plus ``identity``/``similarity``.
    """
    img = open_upright(photo) if isinstance(photo, bytes) else photo
    keep_alpha = img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info)
    img = img.convert("RGBA" if keep_alpha else "RGB")

    scale = min(1.0, DISPLAY_MAX_SIDE / max(img.size))
    if scale < 1.0:
        img = img.resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BILINEAR
        )

    draw = ImageDraw.Draw(img)
    line = max(3, round(max(img.size) / 320))
    boxes = [tuple(float(v) * scale for v in face["box"]) for face in faces]
    # Text sized to the image, but no taller than about a third of a typical face, so labels of a
    # crowd stay beside their faces instead of covering the neighbours.
    heights = sorted(b[3] - b[1] for b in boxes)
    size = round(max(img.size) / 55)
    if heights:
        size = min(size, round(heights[len(heights) // 2] / 3))
    font = _font(max(11, size))
    pad = line + 1

    def measure(text: str) -> tuple[float, float]:
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        return right - left + 2 * pad, bottom - top + 2 * pad

    for face, box in zip(faces, boxes):
        colour = KNOWN_COLOUR if face.get("identity") else UNKNOWN_COLOUR
        draw.rectangle(box, outline=colour, width=line)
    labels = place_labels(boxes, [face_label(f) for f in faces], measure, img.size)  # type: ignore[arg-type]
    for face, label in zip(faces, labels):
        colour = KNOWN_COLOUR if face.get("identity") else UNKNOWN_COLOUR
        draw.rectangle(label.rect, fill=colour)
        left, top, _, _ = draw.textbbox((0, 0), label.text, font=font)
        draw.text((label.rect[0] + pad - left, label.rect[1] + pad - top), label.text, fill=TEXT_COLOUR, font=font)

    out = io.BytesIO()
    if keep_alpha:
        img.save(out, format="PNG", optimize=False)
        mime = "image/png"
    else:
        img.save(out, format="JPEG", quality=JPEG_QUALITY, subsampling=0)  # 4:4:4 keeps thin coloured lines crisp
        mime = "image/jpeg"
    return Annotated(out.getvalue(), mime, img.width, img.height, tuple(labels))
