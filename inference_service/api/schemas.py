"""Response models: the JSON contract of the API, each field described for /docs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

Box = list[float]
BOX_DESCRIPTION = "Face box [x1, y1, x2, y2] in pixels of the uploaded image (may extend past its edges)."


class ErrorResponse(BaseModel):
    detail: str = Field(description="What was wrong, in words a person can act on.")


class EmbedderInfo(BaseModel):
    name: str = Field(description="Embedder model, e.g. dlib-resnet or facenet-vggface2.")
    dim: int = Field(description="Length of its embedding vectors.")
    threshold: float = Field(description="Cosine similarity at or above which two faces count as one person.")


class GalleryStats(BaseModel):
    identities: int = Field(description="Enrolled identities.")
    faces: int = Field(description="Enrolled faces over all identities.")
    # PostgreSQL galleries only (absent for SQLite): where this replica stands in the change log.
    applied_seq: int | None = Field(None, description="Last change-log entry applied to this replica's memory.")
    behind: int | None = Field(None, description="Entries committed (as last seen) but not yet applied here.")
    synced_s_ago: float | None = Field(None, description="Seconds since memory was last confirmed up to date.")
    connected: bool | None = Field(None, description="Whether the change listener is connected to PostgreSQL.")
    next_expiry: str | None = Field(
        None, description="When the next identity's retention ends (ISO 8601 UTC); absent when none expires."
    )


class PoolStats(BaseModel):
    workers: int = Field(description="Inference worker threads.")
    queue_size: int = Field(description="Requests that may wait for a worker before the API answers 503.")
    pending: int = Field(description="Inference jobs running or waiting right now.")


class HealthResponse(BaseModel):
    status: str = Field(description="'ok' once the models are loaded and the gallery is open.")
    embedder: EmbedderInfo = Field(description="The face embedder in use and its threshold.")
    detector: str = Field(description="The face detector in use.")
    gallery: GalleryStats = Field(description="Size of the enrolled gallery.")
    pool: PoolStats = Field(description="Load of the inference worker pool.")


class DetectedFace(BaseModel):
    box: Box = Field(description=BOX_DESCRIPTION, min_length=4, max_length=4)
    score: float = Field(description="Detector confidence that this is a face, 0 to 1.")
    landmarks: list[list[float]] = Field(
        description="Five [x, y] points in image pixels: left eye, right eye, nose, left and right mouth corner."
    )


class DetectResponse(BaseModel):
    width: int = Field(description="Width of the decoded image (after EXIF rotation), pixels.")
    height: int = Field(description="Height of the decoded image (after EXIF rotation), pixels.")
    faces: list[DetectedFace] = Field(description="Every face found; empty when there is none.")


class EmbeddedFace(DetectedFace):
    embedding: list[float] = Field(description="Unit-length embedding vector of `dim` floats.")


class EmbedResponse(BaseModel):
    embedder: str = Field(description="Embedder that produced the vectors; only compare vectors of one embedder.")
    dim: int = Field(description="Length of each embedding.")
    width: int = Field(description="Width of the decoded image, pixels.")
    height: int = Field(description="Height of the decoded image, pixels.")
    faces: list[EmbeddedFace] = Field(description="Every face found with its embedding; empty when there is none.")


class Candidate(BaseModel):
    identity: str = Field(description="An enrolled identity.")
    similarity: float = Field(description="Cosine similarity to its best-matching enrolled face.")


class RecognizedFace(DetectedFace):
    identity: str | None = Field(description="Best identity, or null when its similarity is below the threshold.")
    similarity: float = Field(description="Similarity of the best candidate (0 when the gallery is empty).")
    candidates: list[Candidate] = Field(
        description="Up to 5 identities, best first, each once (its best enrolled face)."
    )


class RecognizeResponse(BaseModel):
    threshold: float = Field(description="The threshold applied to this request.")
    width: int = Field(description="Width of the decoded image, pixels.")
    height: int = Field(description="Height of the decoded image, pixels.")
    faces: list[RecognizedFace] = Field(description="Every face found; empty when there is none.")


class VerifyResponse(BaseModel):
    similarity: float = Field(description="Cosine similarity of the largest face of each image.")
    threshold: float = Field(description="The threshold applied to this request.")
    same: bool = Field(description="True when the similarity is at or above the threshold.")
    face_a: DetectedFace = Field(description="The face compared from image_a (its largest).")
    face_b: DetectedFace = Field(description="The face compared from image_b (its largest).")


class AddedFace(BaseModel):
    face_id: str = Field(description="Id of the enrolled face; use it to delete this face.")
    box: Box = Field(description=BOX_DESCRIPTION, min_length=4, max_length=4)


class EnrollResponse(BaseModel):
    identity: str = Field(description="The identity the faces were added to.")
    added: list[AddedFace] = Field(description="One entry per uploaded image, in upload order.")
    faces: int = Field(description="Faces this identity now has in total.")


class ConsentRecord(BaseModel):
    text: str = Field(description="The consent statement or reference given at enrollment.")
    given_at: str | None = Field(description="When it was given (the enrollment's time), ISO 8601 UTC.")
    key_label: str | None = Field(description="Label of the API key that gave it; null without keys.")


class IdentitySummary(BaseModel):
    name: str = Field(description="Identity name.")
    faces: int = Field(description="Number of enrolled faces.")
    consent: ConsentRecord | None = Field(None, description="The last consent record given; absent when none.")
    expires_at: str | None = Field(None, description="When the identity is erased (ISO 8601 UTC); absent when never.")


class IdentityList(BaseModel):
    identities: list[IdentitySummary] = Field(description="Every enrolled identity, by name.")


class StoredFace(BaseModel):
    face_id: str = Field(description="Id of the enrolled face.")
    created_at: str = Field(description="When it was enrolled, ISO 8601 UTC.")
    box: Box | None = Field(description="Where the face was in its (not kept) source image, or null.")
    agreement: float | None = Field(
        None, description="Cosine similarity to the template of the identity's other faces; null when it is alone."
    )
    flagged: bool = Field(False, description="Agreement below the recognition threshold: may not be this person.")


class IdentityDetail(BaseModel):
    name: str = Field(description="Identity name.")
    faces: list[StoredFace] = Field(description="Its enrolled faces, oldest first.")
    consent: ConsentRecord | None = Field(None, description="The last consent record given, or null.")
    expires_at: str | None = Field(None, description="When the identity is erased (ISO 8601 UTC), or null.")


class AuditEventModel(BaseModel):
    seq: int = Field(description="Position in the trail; pass the last one as `after` for the next page.")
    at: str = Field(description="When, ISO 8601 UTC.")
    action: str = Field(
        description="enroll, delete_face, delete_identity, expire, export, rename, merge, move_face or dismiss_pair."
    )
    identity: str | None = Field(description="The person's name (null once forgotten, see FACE_AUDIT_FORGET_NAMES).")
    face_ids: list[str] = Field(description="The faces the action concerned.")
    key_label: str | None = Field(description="Label of the key used ('retention' for expiry erases).")
    client: str | None = Field(description="The client's address.")
    consent: str | None = Field(None, description="The consent text an enrollment carried (null for other actions).")
    detail: str | None = Field(None, description="What a rename, merge or move did, e.g. from 'Chris Lee'.")


class AuditPage(BaseModel):
    events: list[AuditEventModel] = Field(description="Matching events, oldest first.")
    next_after: int | None = Field(description="`after` for the next page; null when this is the last.")


class ExportedFace(BaseModel):
    face_id: str = Field(description="Id of the enrolled face.")
    box: Box | None = Field(description="Where the face was in its (not kept) source image, or null.")
    created_at: str = Field(description="When it was enrolled, ISO 8601 UTC.")
    embedding: list[float] = Field(description="The stored embedding, as stored.")
    thumbnail_jpeg_base64: str | None = Field(
        None,
        description="The small JPEG crop of the face kept at enrollment, base64; null for a face enrolled "
        "before thumbnails were kept.",
    )


class VideoTrackSource(BaseModel):
    job_id: str = Field(description="The video job (its results may since have been removed by retention).")
    track_id: int = Field(description="The track of that job whose kept faces were enrolled.")
    enrolled_at: str = Field(description="When the track was enrolled (ISO 8601 UTC).")


class IdentityExport(BaseModel):
    name: str = Field(description="Identity name, as first enrolled.")
    enrolled_at: str = Field(description="When the identity was first enrolled.")
    consent: ConsentRecord | None = Field(description="The last consent record given, or null.")
    consents: list[ConsentRecord] = Field(
        description="Every consent record given, one per enrollment that carried one, oldest first."
    )
    expires_at: str | None = Field(description="When the identity is erased (ISO 8601 UTC), or null.")
    faces: list[ExportedFace] = Field(description="Every stored face, with its embedding and thumbnail.")
    audit: list[AuditEventModel] = Field(
        description="Every audit event about this person since their first enrollment (not about an earlier "
        "person who had the name), this export included."
    )
    video_tracks: list[VideoTrackSource] = Field(
        default_factory=list,
        description="The tracks of video jobs enrolled under this name: where those faces came from.",
    )
    live_events: list[dict[str, Any]] = Field(
        default_factory=list, description="Camera events naming this person (GET /events), newest first."
    )


class RenameRequest(BaseModel):
    name: str = Field(description="The new name (rules as for enrollment); a change of case is a rename too.")
    merge: bool = Field(False, description="When another identity has the name: merge into it instead of a 409.")


class MergeRequest(BaseModel):
    into: str = Field(description="The identity that receives every face; this one is removed.")


class MoveRequest(BaseModel):
    to: str = Field(description="The identity the face moves to; created when new (consent rules as for enrollment).")
    consent: str | None = Field(None, max_length=800, description="Consent, when the move creates the identity.")
    expires_at: str | None = Field(
        None, max_length=64, description="Expiry (ISO 8601 with offset), when the move creates the identity."
    )


class CurationResult(BaseModel):
    name: str = Field(description="The identity the faces are in now.")
    faces: int = Field(description="Faces that identity has now.")
    moved: list[str] = Field(description="Ids of the faces that changed identity (all of them for a rename).")


class SimilarPair(BaseModel):
    a: str = Field(description="An identity.")
    b: str = Field(description="Another identity that may be the same person.")
    similarity: float = Field(description="Cosine similarity of their templates (mean faces).")


class FlaggedFace(BaseModel):
    identity: str = Field(description="The identity the face is enrolled under.")
    face_id: str = Field(description="The face.")
    agreement: float = Field(description="Its similarity to the template of the identity's other faces.")


class DismissRequest(BaseModel):
    a: str = Field(description="An identity.")
    b: str = Field(description="Another identity, said not to be the same person.")


class GalleryReport(BaseModel):
    pairs: list[SimilarPair] = Field(description="Identities that may be one person, most similar first.")
    flagged: list[FlaggedFace] = Field(description="Faces that may not be their identity's person, worst first.")


ERROR_DESCRIPTIONS = {
    400: "The upload is empty, truncated or damaged.",
    401: "Missing or wrong X-API-Key (only when the service has FACE_API_KEY, or FACE_READ_API_KEY for reads).",
    404: "No such identity or face.",
    408: "The request body did not arrive within FACE_BODY_TIMEOUT_S seconds.",
    413: (
        "The upload is over FACE_MAX_UPLOAD_MB, an image has more pixels than FACE_MAX_PIXELS, or the "
        "request's images more than FACE_MAX_REQUEST_PIXELS together."
    ),
    409: "Another identity has that name: rename with merge=true, or merge into it.",
    415: "The upload is not an image in a supported format.",
    422: "A field is missing or invalid, a name is not allowed, or (verify, enroll) an image has no face.",
    503: (
        "All workers and waiting slots are busy, or the gallery cannot be reached; retry after the "
        "Retry-After header's seconds."
    ),
    507: "The gallery's disk is full; nothing of the request was stored.",
}


def error_responses(*codes: int) -> dict[int | str, dict]:
    """OpenAPI entries for the error codes a route can answer, all with :class:`ErrorResponse`."""
    return {code: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[code]} for code in codes}
