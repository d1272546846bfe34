"""Video jobs as the workers and the API see them: the ``Job`` row and what a job store does.

The queue is a table, not memory: a job is inserted ``queued``, a worker *claims* it (one
transaction moves the oldest queued row to ``running``, so two workers never take the same job),
reports progress on the row, and ends it ``done``/``failed``. At start-up,
``recover_interrupted`` puts rows left ``running`` by a killed process back in the queue (their
upload is still on disk) or, after ``max_attempts`` starts, fails them with the reason. The
stores: ``sqlite_store.SQLiteJobStore`` and ``pg_store.PostgresJobStore``; ``job_stores``
picks one for a gallery.

An upload holds a slot before its first byte is read: ``reserve`` records it (``video_uploads``)
only while jobs and uploads together are under ``FACE_MAX_VIDEO_JOBS``, in the same transaction
that counts them, so parallel uploads cannot all pass the check before any of them is recorded,
and the disk uploads in progress can take is bounded by the cap times FACE_MAX_VIDEO_MB.
``admit`` turns the reservation into a queued job; ``release`` gives it back.

A track enrolled under a name is recorded (``video_track_enrollments``: which job, which track,
which identity), so that erasing the person reaches the faces the job kept for that track: the
record loses the name and keeps only that the track was erased, which refuses enrolling it again.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

STATUSES = ("queued", "running", "done", "failed", "cancelled")
UNFINISHED = ("queued", "running")


@dataclass(frozen=True)
class Job:
    """One row of ``video_jobs``; times are Unix seconds."""

    id: str
    status: str
    filename: str
    size_bytes: int
    duration_s: float
    frames_total: int
    frames_done: int = 0
    stage: str = "queued"
    fraction: float = 0.0
    error: str | None = None
    attempts: int = 0
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None
    warning: str | None = None  # a job that ended done but not as expected (a video that ends early)

    @property
    def finished(self) -> bool:
        return self.status not in UNFINISHED


class JobStore(Protocol):
    def create(self, job: Job) -> None: ...
    def reserve(self, job_id: str, cap: int) -> bool: ...
    def admit(self, job: Job) -> None: ...
    def release(self, job_id: str) -> None: ...
    def stale_uploads(self, started_before: float) -> builtins.list[str]: ...
    def get(self, job_id: str) -> Job | None: ...
    def list(self, limit: int = 100, offset: int = 0) -> builtins.list[Job]: ...
    def count_unfinished(self) -> int: ...
    def fail_expired(self) -> builtins.list[str]: ...
    def claim_next(self) -> Job | None: ...
    def progress(self, job_id: str, stage: str, frames_done: int, fraction: float) -> bool: ...
    def heartbeat(self, job_id: str) -> bool: ...
    def finish(self, job_id: str, status: str, error: str | None = None, warning: str | None = None) -> None: ...
    def requeue(self, job_id: str) -> None: ...
    def mark_cancelled(self, job_id: str) -> bool: ...
    def delete(self, job_id: str) -> bool: ...
    def recover_interrupted(self, max_attempts: int) -> tuple[builtins.list[str], builtins.list[str]]: ...
    def finished_before(self, cutoff: float) -> builtins.list[str]: ...
    def record_enrollment(self, job_id: str, track_id: int, identity: str, key: str) -> None: ...
    def unrecord_enrollment(self, job_id: str, track_id: int, key: str) -> None: ...
    def track_erased(self, job_id: str, track_id: int) -> bool: ...
    def enrollments_of(self, key: str) -> builtins.list[TrackEnrollment]: ...
    def enrolled_identities(self, enrolled_before: float) -> builtins.list[str]: ...
    def erase_enrollments(self, key: str) -> builtins.list[TrackEnrollment]: ...
    def reassign_enrollments(self, key: str, identity: str, new_key: str) -> int: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class TrackEnrollment:
    """A track of a job enrolled under a name: where a person's data came from."""

    job_id: str
    track_id: int
    enrolled_at: float

    def as_json(self) -> dict:
        when = datetime.fromtimestamp(self.enrolled_at, UTC).isoformat(timespec="seconds")
        return {"job_id": self.job_id, "track_id": self.track_id, "enrolled_at": when}
