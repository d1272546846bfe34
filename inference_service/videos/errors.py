"""What can go wrong with a video or a video job, as a *kind* and a sentence; no HTTP here.

The API maps each kind to its status code (``api/errors.py``), the command line or a future
camera feed may map them otherwise; the sentence is written for the person who sent the video.
"""

from __future__ import annotations

from enum import StrEnum


class VideoErrorKind(StrEnum):
    TOO_LARGE = "too_large"  # more bytes than FACE_MAX_VIDEO_MB
    EMPTY = "empty"  # no byte of video
    NOT_A_VIDEO = "not_a_video"  # nothing a decoder can read, or a single picture
    TOO_LONG = "too_long"  # longer than FACE_MAX_VIDEO_SECONDS
    FRAMES_TOO_LARGE = "frames_too_large"  # width x height over FACE_MAX_PIXELS
    DISK_FULL = "disk_full"  # the jobs' folder has no room for it
    BUSY = "busy"  # FACE_MAX_VIDEO_JOBS jobs (or uploads) already hold every slot
    NO_FACES = "no_faces"  # the track kept no face to enroll
    EMBEDDER_MISMATCH = "embedder_mismatch"  # the job's faces come from another embedder
    ERASED = "erased"  # the track's faces were erased with the person enrolled from them
    LOW_QUALITY = "low_quality"  # none of the track's kept faces passes the enrollment quality gate


class VideoError(Exception):
    """A video or a request about one that cannot be served, and why (``kind``)."""

    def __init__(self, kind: VideoErrorKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
