"""Video jobs as the workers and the API see them: the ``Job`` row and what a job store does.

The queue is a table, not memory: a job is inserted ``queued``, a worker *claims* it (one
transaction moves the oldest queued row to ``running``, so two workers never take the same job),
reports progress on the row, and ends it ``done``/``failed``. At start-up,
``recover_interrupted`` puts rows left ``running`` by a killed process back in the queue (their
upload is still on disk) or, after ``max_attempts`` starts, fails them with the reason. The
stores: ``sqlite_store.SQLiteJobStore`` and ``pg_store.PostgresJobStore``; ``job_stores``
picks one for a gallery.
"""

from __future__ import annotations

from dataclasses import dataclass
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

    @property
    def finished(self) -> bool:
        return self.status not in UNFINISHED


class JobStore(Protocol):
    def create(self, job: Job) -> None: ...
    def get(self, job_id: str) -> Job | None: ...
    def list(self, limit: int = 100) -> list[Job]: ...
    def count_unfinished(self) -> int: ...
    def claim_next(self) -> Job | None: ...
    def progress(self, job_id: str, stage: str, frames_done: int, fraction: float) -> bool: ...
    def heartbeat(self, job_id: str) -> bool: ...
    def finish(self, job_id: str, status: str, error: str | None = None) -> None: ...
    def requeue(self, job_id: str) -> None: ...
    def mark_cancelled(self, job_id: str) -> bool: ...
    def delete(self, job_id: str) -> bool: ...
    def recover_interrupted(self, max_attempts: int) -> tuple[list[str], list[str]]: ...
    def finished_before(self, cutoff: float) -> list[str]: ...
    def close(self) -> None: ...
