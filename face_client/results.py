"""The API's answers as typed dictionaries: what each endpoint returns, for editors and type checkers.

TypedDicts rather than classes: the values are the API's JSON as it arrived (templates and
scripts index them as dicts), and a field the API adds later reaches the caller untouched.
The API's own pydantic models (``inference_service/api/schemas.py``) describe each field.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

Box = list[float]  # [x1, y1, x2, y2] in pixels of the uploaded image


class EmbedderInfo(TypedDict):
    name: str
    dim: int
    threshold: float


class Health(TypedDict):
    status: str
    embedder: EmbedderInfo
    detector: str
    gallery: dict
    pool: NotRequired[dict]


class DetectedFace(TypedDict):
    box: Box
    score: float
    landmarks: list[list[float]]


class Detection(TypedDict):
    width: int
    height: int
    faces: list[DetectedFace]


class EmbeddedFace(DetectedFace):
    embedding: list[float]


class Embedding(TypedDict):
    embedder: str
    dim: int
    width: int
    height: int
    faces: list[EmbeddedFace]


class Candidate(TypedDict):
    identity: str
    similarity: float


class RecognizedFace(DetectedFace):
    identity: str | None
    similarity: float
    candidates: list[Candidate]


class Recognition(TypedDict):
    threshold: float
    width: int
    height: int
    faces: list[RecognizedFace]


class Verification(TypedDict):
    similarity: float
    threshold: float
    same: bool
    face_a: DetectedFace
    face_b: DetectedFace


class AddedFace(TypedDict):
    face_id: str
    box: Box


class Enrollment(TypedDict):
    identity: str
    added: list[AddedFace]
    faces: int


class CurationResult(TypedDict):
    name: str  # the identity the faces are in now
    faces: int
    moved: list[str]


class IdentitySummary(TypedDict):
    name: str
    faces: int


class StoredFace(TypedDict):
    face_id: str
    created_at: str
    box: Box | None
    agreement: NotRequired[float]  # similarity to the template of the identity's other faces
    flagged: NotRequired[bool]  # agreement under the threshold: "may not be this person"
    consent: NotRequired[dict | None]
    expires_at: NotRequired[str | None]


class Identity(TypedDict):
    name: str
    faces: list[StoredFace]


class SimilarPair(TypedDict):
    a: str
    b: str
    similarity: float  # between the two identities' templates


class FlaggedFace(TypedDict):
    identity: str
    face_id: str
    agreement: float


class GalleryReport(TypedDict):
    """``GET /gallery/report``: identities that may be one person (best first), faces that may not be
    their identity's."""

    pairs: list[SimilarPair]
    flagged: list[FlaggedFace]


class VideoJob(TypedDict):
    id: str
    url: str
    status: str  # queued, running, done, failed, cancelled
    progress: NotRequired[dict]
    error: NotRequired[str | None]
    timeline: NotRequired[dict]
    summary: NotRequired[dict]
    track_faces: NotRequired[dict]
    annotated_url: NotRequired[str]
