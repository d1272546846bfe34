"""The CPU work behind each endpoint, as plain functions that run on a worker thread.

Each function takes the raw uploaded bytes and returns a JSON-ready dict: decoding, detection,
embedding and gallery search all happen here, off the event loop, in one pool job per request.
Nothing here knows about HTTP except :class:`InputError`, which carries the status a client
should see for a problem with what it sent.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..engine import Face, FaceEngine, ImageError, load_image, pick_largest
from ..gallery import Gallery, Recognition

# Cosine similarities are meaningful to ~1e-4 (float32 embeddings); more digits are noise.
SIMILARITY_DIGITS = 4
# Six decimals keep a 128/512-d unit vector's norm within ~1e-5 of 1 while halving the JSON.
EMBEDDING_DIGITS = 6
TOP_K = 5


class InputError(Exception):
    """Something wrong with what the client sent; ``status_code`` is the HTTP answer."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


def decode(data: bytes, max_pixels: int, label: str) -> np.ndarray:
    """Decode one upload, naming it in the error (400 corrupt/empty, 413 too many pixels, 415)."""
    try:
        return load_image(data, max_pixels)
    except ImageError as exc:
        raise InputError(exc.status_code, f"{label}: {exc}") from None


def sim(value: float) -> float:
    return round(float(value), SIMILARITY_DIGITS)


def _face_json(face: Face) -> dict:
    return face.to_dict()


def _size(image: np.ndarray) -> dict:
    return {"width": int(image.shape[1]), "height": int(image.shape[0])}


def detect(engine: FaceEngine, data: bytes, max_pixels: int, label: str = "image") -> dict:
    image = decode(data, max_pixels, label)
    return {**_size(image), "faces": [_face_json(f) for f in engine.detect(image)]}


def embed(engine: FaceEngine, data: bytes, max_pixels: int, label: str = "image") -> dict:
    image = decode(data, max_pixels, label)
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
    engine: FaceEngine, gallery: Gallery, data: bytes, max_pixels: int, threshold: float, label: str = "image"
) -> dict:
    image = decode(data, max_pixels, label)
    analyzed = engine.analyze(image)
    matches = gallery.search(np.stack([a.embedding for a in analyzed]), threshold, TOP_K) if analyzed else []
    faces = [{**_face_json(a.face), **_recognition_json(m)} for a, m in zip(analyzed, matches)]
    return {"threshold": sim(threshold), **_size(image), "faces": faces}


def _largest_faces(engine: FaceEngine, images: Sequence[np.ndarray], labels: Sequence[str]) -> list[Face]:
    """The largest face of each image; 422 naming the first image that has none."""
    chosen = []
    for faces, label in zip(engine.detect_batch(images), labels):
        face = pick_largest(faces)
        if face is None:
            raise InputError(422, f"no face found in {label}")
        chosen.append(face)
    return chosen


def _embed_each(engine: FaceEngine, images: Sequence[np.ndarray], faces: Sequence[Face]) -> np.ndarray:
    """One embedding per (image, face) pair, all in shared batches."""
    chips = np.concatenate([engine.embedder.crops(img, [face]) for img, face in zip(images, faces)])
    return engine.embedder.embed(chips)


def verify(
    engine: FaceEngine, data_a: bytes, data_b: bytes, max_pixels: int, threshold: float
) -> dict:
    labels = ("image_a", "image_b")
    images = [decode(data_a, max_pixels, labels[0]), decode(data_b, max_pixels, labels[1])]
    faces = _largest_faces(engine, images, labels)
    vectors = _embed_each(engine, images, faces)
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
    max_pixels: int,
) -> dict:
    """Enroll the largest face of every image, or nothing if any image is unusable."""
    labels = [label for label, _ in uploads]
    images = [decode(data, max_pixels, label) for label, data in uploads]
    faces = _largest_faces(engine, images, labels)
    vectors = _embed_each(engine, images, faces)
    records = gallery.enroll(identity, vectors, [f.box for f in faces])
    stored = gallery.faces_of(identity) or []
    return {
        "identity": identity,
        "added": [{"face_id": r.face_id, "box": _face_json(f)["box"]} for r, f in zip(records, faces)],
        "faces": len(stored),
    }
