"""Photos analysed for the API's endpoints, as plain functions that run on a worker thread.

Each function takes the raw uploaded bytes and returns a JSON-ready dict: decoding, detection,
embedding and gallery search all happen here, off the event loop, in one pool job per request.
A request's images are measured from their headers first (:func:`check_pixel_budget`) and then
decoded one at a time, keeping only each one's aligned face chip: a decoded photo costs hundreds
of MB, a chip kilobytes, so a request's peak memory is one image whatever it holds.
Nothing here knows about HTTP: a problem with what the client sent is an :class:`InputError`
with a ``kind``, which the API turns into a status code (``api/errors.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..engine import (
    CorruptImageError,
    Face,
    FaceEngine,
    ImageError,
    ImageTooLargeError,
    UnsupportedImageError,
    iou,
    load_image,
    pick_largest,
)
from ..engine.images import image_pixels
from ..engine.thumbnails import face_thumbnail
from ..gallery import Gallery, Recognition
from .quality import FaceQuality, enrollment_problems

# Cosine similarities are meaningful to ~1e-4 (float32 embeddings); more digits are noise.
SIMILARITY_DIGITS = 4
# Six decimals keep a 128/512-d unit vector's norm within ~1e-5 of 1 while halving the JSON.
EMBEDDING_DIGITS = 6
TOP_K = 5
# A client's box names the detected face that overlaps it by at least this IoU: the PASCAL VOC
# criterion for "the same object" (Everingham et al. 2010), the one our tests match faces by.
MIN_BOX_IOU = 0.5

Box = tuple[float, float, float, float]


InputErrorKind = Literal["corrupt", "unsupported", "too_large", "no_face", "low_quality"]


class InputError(Exception):
    """Something wrong with what the client sent, of a ``kind`` the caller words its own way."""

    def __init__(self, kind: InputErrorKind, detail: str) -> None:
        super().__init__(detail)
        self.kind: InputErrorKind = kind
        self.detail = detail


def image_error_kind(exc: ImageError) -> InputErrorKind:
    """What kind of input problem an image error is (too large, not an image we read, damaged)."""
    if isinstance(exc, ImageTooLargeError):
        return "too_large"
    if isinstance(exc, UnsupportedImageError):
        return "unsupported"
    assert isinstance(exc, CorruptImageError) or type(exc) is ImageError
    return "corrupt"


@dataclass(frozen=True)
class PixelLimits:
    """``per_image`` (FACE_MAX_PIXELS) and ``per_request`` (FACE_MAX_REQUEST_PIXELS)."""

    per_image: int
    per_request: int


def check_pixel_budget(uploads: Sequence[tuple[str, bytes]], limits: PixelLimits) -> None:
    """Refuse (too large) a request whose images' headers add up to more than the request budget.

    Only headers are read: a 11 KB PNG claiming 6000x6000 costs nothing here, where decoding it
    would cost 108 MB. Unreadable or oversized single images fail here too, naming the upload.
    """
    total = 0
    for label, data in uploads:
        try:
            total += image_pixels(data, limits.per_image)
        except ImageError as exc:
            raise InputError(image_error_kind(exc), f"{label}: {exc}") from None
    if total > limits.per_request:
        raise InputError(
            "too_large",
            f"the {len(uploads)} image(s) of this request have {total:,} pixels in all; the limit is "
            f"{limits.per_request:,} per request (FACE_MAX_REQUEST_PIXELS): send fewer or smaller images",
        )


def decode(data: bytes, max_pixels: int, label: str) -> np.ndarray:
    """Decode one upload, naming it in the error (damaged or empty, too many pixels, not an image)."""
    try:
        return load_image(data, max_pixels)
    except ImageError as exc:
        raise InputError(image_error_kind(exc), f"{label}: {exc}") from None


def sim(value: float) -> float:
    return round(float(value), SIMILARITY_DIGITS)


def _face_json(face: Face) -> dict:
    return face.to_dict()


def _size(image: np.ndarray) -> dict:
    return {"width": int(image.shape[1]), "height": int(image.shape[0])}


def detect(engine: FaceEngine, data: bytes, limits: PixelLimits, label: str = "image") -> dict:
    check_pixel_budget([(label, data)], limits)
    image = decode(data, limits.per_image, label)
    return {**_size(image), "faces": [_face_json(f) for f in engine.detect(image)]}


def embed(engine: FaceEngine, data: bytes, limits: PixelLimits, label: str = "image") -> dict:
    check_pixel_budget([(label, data)], limits)
    image = decode(data, limits.per_image, label)
    faces = [
        {**_face_json(a.face), "embedding": np.round(a.embedding.astype(np.float64), EMBEDDING_DIGITS).tolist()}
        for a in engine.analyze(image)
    ]
    return {"embedder": engine.embedder.name, "dim": engine.embedder.dim, **_size(image), "faces": faces}


def _recognition_json(rec: Recognition) -> dict:
    return {
        "identity": rec.identity,
        "similarity": sim(rec.similarity),
        "candidates": [{"identity": c.identity, "similarity": sim(c.similarity)} for c in rec.candidates],
    }


def recognize(
    engine: FaceEngine, gallery: Gallery, data: bytes, limits: PixelLimits, threshold: float, label: str = "image"
) -> dict:
    check_pixel_budget([(label, data)], limits)
    image = decode(data, limits.per_image, label)
    analyzed = engine.analyze(image)
    matches = gallery.search(np.stack([a.embedding for a in analyzed]), threshold, TOP_K) if analyzed else []
    faces = [{**_face_json(a.face), **_recognition_json(m)} for a, m in zip(analyzed, matches)]
    return {"threshold": sim(threshold), **_size(image), "faces": faces}


def format_box(box: Sequence[float]) -> str:
    return ",".join(f"{v:g}" for v in box)


def _chosen_face(faces: Sequence[Face], box: Box | None, label: str) -> Face:
    """The largest face, or with a ``box`` the one overlapping it best; no such face names the image."""
    if box is None:
        face = pick_largest(faces)
        if face is None:
            raise InputError("no_face", f"no face found in {label}")
        return face
    best = max(faces, key=lambda f: iou(f.box, box), default=None)
    overlap = iou(best.box, box) if best is not None else 0.0
    if best is None or overlap < MIN_BOX_IOU:
        raise InputError(
            "no_face",
            f"no face found in {label} at box {format_box(box)}: {len(faces)} face(s) detected, the best "
            f"overlap is IoU {overlap:.2f} and at least {MIN_BOX_IOU} is needed; use a box from /detect",
        )
    return best


def _chosen_face_chips(
    engine: FaceEngine,
    uploads: Sequence[tuple[str, bytes]],
    limits: PixelLimits,
    boxes: Sequence[Box | None] = (),
    gate: bool = False,
    thumbnails: list[bytes | None] | None = None,
) -> tuple[list[Face], np.ndarray]:
    """One face per upload (see :func:`_chosen_face`) and its aligned chip.

    ``gate``: refuse (``low_quality``) a face too small, dark or blurred to enroll, naming the
    upload and why (quality.enrollment_problems).

    ``boxes`` apply to the first uploads in order; an upload past them (or with ``None``) gives
    its largest face. One image is decoded at a time and dropped once its chip is cut, so the
    request's peak memory is that of its largest image, not of all of them together.
    """
    check_pixel_budget(uploads, limits)
    faces, chips = [], []
    for index, (label, data) in enumerate(uploads):
        image = decode(data, limits.per_image, label)
        face = _chosen_face(engine.detect(image), boxes[index] if index < len(boxes) else None, label)
        problems = enrollment_problems(FaceQuality.of(image, face.box)) if gate else []
        if problems:
            raise InputError(
                "low_quality",
                f"{label}: not enrolled, {'; '.join(problems)}: such a face makes a poor reference that "
                "strangers can come to resemble; send a clearer photo, or force=true to enroll it anyway",
            )
        faces.append(face)
        chips.append(engine.embedder.crops(image, [face]))
        if thumbnails is not None:  # enrollment keeps a small crop of the face, never the photo
            thumbnails.append(face_thumbnail(image, face.box))
        del image
    return faces, np.concatenate(chips)


def verify(engine: FaceEngine, data_a: bytes, data_b: bytes, limits: PixelLimits, threshold: float) -> dict:
    faces, chips = _chosen_face_chips(engine, [("image_a", data_a), ("image_b", data_b)], limits)
    vectors = engine.embed(chips)
    similarity = float(np.clip(vectors[0] @ vectors[1], -1.0, 1.0))
    return {
        "similarity": sim(similarity),
        "threshold": sim(threshold),
        "same": bool(similarity >= threshold),
        "face_a": _face_json(faces[0]),
        "face_b": _face_json(faces[1]),
    }


def enroll(
    engine: FaceEngine,
    gallery: Gallery,
    identity: str,
    uploads: Sequence[tuple[str, bytes]],
    limits: PixelLimits,
    boxes: Sequence[Box | None] = (),
    force: bool = False,
) -> dict:
    """Enroll one face of every image (the boxed one, else the largest), or nothing if any image
    is unusable: no face, or (unless ``force``) a face that fails the enrollment quality gate."""
    thumbnails: list[bytes | None] = []
    faces, chips = _chosen_face_chips(engine, uploads, limits, boxes, gate=not force, thumbnails=thumbnails)
    vectors = engine.embed(chips)
    records = gallery.enroll(identity, vectors, [f.box for f in faces], thumbnails)
    stored = gallery.faces_of(identity) or []
    return {
        "identity": records[0].identity if records else identity,  # an earlier spelling wins
        "added": [{"face_id": r.face_id, "box": _face_json(f)["box"]} for r, f in zip(records, faces)],
        "faces": len(stored),
    }
