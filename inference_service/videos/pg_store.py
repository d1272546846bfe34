"""Video jobs in PostgreSQL, so that any API replica sharing the gallery database may run them.

The same methods as :class:`~.sqlite_store.SQLiteJobStore`. A replica claims the oldest queued job with
``FOR UPDATE SKIP LOCKED``: two replicas claiming at once lock different rows, never the same one.
A replica cannot tell whether a ``running`` row of another replica is still being worked on, so
a running job holds a *lease*: its worker renews ``heartbeat_at`` (progress writes and a
heartbeat thread, see ``runner.py``), and a row whose heartbeat is older than ``lease_s`` belongs
to a replica that died or was cut off; the next claim takes it over (another attempt), or fails
it with the reason once it has used ``max_attempts``. Times come from the database's clock, so
replicas with skewed clocks agree on which lease expired.

Every write of a running job is fenced by the attempt that claimed it: a replica whose lease
was taken over finds its progress refused (``progress`` answers False) and stops, instead of
finishing a job that another replica now runs.
"""

from __future__ import annotations

import builtins
import threading
from contextlib import AbstractContextManager
from dataclasses import asdict
from typing import cast

import psycopg
from psycopg.rows import DictRow, dict_row

from ..gallery.pg_connect import connect_pool, pooled_cursor
from ..gallery.urls import redact
from .jobs import Job, TrackEnrollment

SCHEMA_LOCK = 0x66616365_7601  # pg_advisory_xact_lock key: replicas starting at once create the table once
NOW = "extract(epoch FROM clock_timestamp())"

SCHEMA = """
CREATE TABLE IF NOT EXISTS video_jobs (
    id text PRIMARY KEY,
    status text NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    filename text NOT NULL,
    size_bytes bigint NOT NULL,
    duration_s double precision NOT NULL,
    frames_total integer NOT NULL,
    frames_done integer NOT NULL DEFAULT 0,
    stage text NOT NULL DEFAULT 'queued',
    fraction double precision NOT NULL DEFAULT 0,
    error text,
    attempts integer NOT NULL DEFAULT 0,
    created_at double precision NOT NULL,
    started_at double precision,
    finished_at double precision,
    heartbeat_at double precision,
    warning text
);
ALTER TABLE video_jobs ADD COLUMN IF NOT EXISTS warning text;
CREATE INDEX IF NOT EXISTS video_jobs_queue ON video_jobs (status, created_at);
CREATE TABLE IF NOT EXISTS video_uploads (
    id text PRIMARY KEY,
    started_at double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS video_track_enrollments (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id text NOT NULL,
    track_id integer NOT NULL,
    identity_key text,
    identity text,
    enrolled_at double precision NOT NULL,
    erased_at double precision
);
CREATE INDEX IF NOT EXISTS video_track_enrollments_key ON video_track_enrollments (identity_key);
CREATE INDEX IF NOT EXISTS video_track_enrollments_track ON video_track_enrollments (job_id, track_id);
"""
RESERVE_LOCK = 0x66616365_7602  # pg_advisory_xact_lock key: slots are counted and taken one replica at a time
SLOTS_TAKEN = (
    "SELECT (SELECT count(*) FROM video_jobs WHERE status IN ('queued', 'running')) "
    "+ (SELECT count(*) FROM video_uploads) AS n"
)

# A running job whose lease expired and that used every attempt: failed, with the reason.
_FAIL_EXPIRED = f"""
UPDATE video_jobs SET status = 'failed', error = %(reason)s, finished_at = {NOW}
WHERE id IN (
    SELECT id FROM video_jobs
    WHERE status = 'running' AND heartbeat_at < {NOW} - %(lease)s AND attempts >= %(max_attempts)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id
"""

# The oldest queued job, or a running one whose lease expired, becomes this worker's.
_CLAIM = f"""
UPDATE video_jobs SET status = 'running', stage = 'starting', attempts = attempts + 1,
    started_at = {NOW}, heartbeat_at = {NOW}, frames_done = 0, fraction = 0
WHERE id = (
    SELECT id FROM video_jobs
    WHERE status = 'queued'
       OR (status = 'running' AND heartbeat_at < {NOW} - %(lease)s AND attempts < %(max_attempts)s)
    ORDER BY created_at
    FOR UPDATE SKIP LOCKED
    LIMIT 1
)
RETURNING *
"""

# Expired leases put back in the queue (a replica starting after a crash; not counted again).
_REQUEUE_EXPIRED = f"""
UPDATE video_jobs SET status = 'queued', stage = 'queued', frames_done = 0, fraction = 0
WHERE id IN (
    SELECT id FROM video_jobs
    WHERE status = 'running' AND heartbeat_at < {NOW} - %(lease)s AND attempts < %(max_attempts)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id
"""


def failed_reason(max_attempts: int) -> str:
    return (
        f"the service stopped while analysing this video {max_attempts} times; "
        "it was not tried again (upload it again, or a shorter part of it)"
    )


class PostgresJobStore:
    """``video_jobs`` in the gallery's PostgreSQL database, through a small connection pool."""

    def __init__(self, url: str, *, lease_s: float = 60.0, max_attempts: int = 2, pool_size: int = 4) -> None:
        self.where = redact(url)
        self.lease_s = lease_s
        self.max_attempts = max_attempts
        self._claims: dict[str, int] = {}  # job this process runs -> the attempt that claimed it
        self._lock = threading.Lock()
        # The gallery's connection settings (keepalives, UTC, timeouts, errors as gallery errors).
        self._pool = connect_pool(
            url, name="face-video-jobs", max_size=pool_size, what="the jobs' database", row_factory=dict_row
        )
        try:
            with self._cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                cur.execute(SCHEMA)
        except BaseException:
            self._pool.close()
            raise

    def _cursor(self) -> AbstractContextManager[psycopg.Cursor[DictRow]]:
        """A cursor inside one transaction; an unreachable server is a 503 for the API, a full disk a 507."""
        # The pool's connections make dict rows (row_factory above); the helper is typed for any row.
        return cast("AbstractContextManager[psycopg.Cursor[DictRow]]", pooled_cursor(self._pool, self.where))

    def _attempt(self, job_id: str) -> int | None:
        with self._lock:
            return self._claims.get(job_id)

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._claims.pop(job_id, None)

    # -- reads --------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        with self._cursor() as cur:
            row = cur.execute("SELECT * FROM video_jobs WHERE id = %s", (job_id,)).fetchone()
        return Job(**row) if row else None

    def list(self, limit: int = 100, offset: int = 0) -> builtins.list[Job]:
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT * FROM video_jobs ORDER BY created_at DESC, id LIMIT %s OFFSET %s", (limit, offset)
            ).fetchall()
        return [Job(**r) for r in rows]

    def count_unfinished(self) -> int:
        """Jobs waiting or running, and uploads in progress: the slots FACE_MAX_VIDEO_JOBS bounds."""
        with self._cursor() as cur:
            return self._slots_taken(cur)

    @staticmethod
    def _slots_taken(cur: psycopg.Cursor[DictRow]) -> int:
        row = cur.execute(SLOTS_TAKEN).fetchone()
        assert row is not None  # an aggregate without GROUP BY always has its one row
        return int(row["n"])

    def finished_before(self, cutoff: float) -> builtins.list[str]:
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT id FROM video_jobs WHERE status NOT IN ('queued', 'running') AND finished_at < %s", (cutoff,)
            ).fetchall()
        return [r["id"] for r in rows]

    # -- writes -------------------------------------------------------------------------------
    def create(self, job: Job) -> None:
        row = asdict(job)
        columns = ", ".join(row)
        marks = ", ".join(f"%({k})s" for k in row)
        with self._cursor() as cur:
            cur.execute(f"INSERT INTO video_jobs ({columns}) VALUES ({marks})", row)

    def reserve(self, job_id: str, cap: int) -> bool:
        """Hold a slot for an upload about to be read; False when ``cap`` slots are taken.

        The count and the insert run under one advisory lock, so replicas reserving at once
        cannot both see the last free slot."""
        with self._cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (RESERVE_LOCK,))
            if self._slots_taken(cur) >= cap:
                return False
            cur.execute(f"INSERT INTO video_uploads (id, started_at) VALUES (%s, {NOW})", (job_id,))
            return True

    def admit(self, job: Job) -> None:
        """The upload's reservation becomes the queued ``job``, in one transaction."""
        row = asdict(job)
        columns = ", ".join(row)
        marks = ", ".join(f"%({k})s" for k in row)
        with self._cursor() as cur:
            cur.execute(f"INSERT INTO video_jobs ({columns}) VALUES ({marks})", row)
            cur.execute("DELETE FROM video_uploads WHERE id = %s", (job.id,))

    def release(self, job_id: str) -> None:
        with self._cursor() as cur:
            cur.execute("DELETE FROM video_uploads WHERE id = %s", (job_id,))

    def stale_uploads(self, started_before: float) -> builtins.list[str]:
        """Reservations of uploads that began before ``started_before`` (their request is long
        over: a replica killed mid-upload), now removed; their ids, for their folders to go too."""
        with self._cursor() as cur:
            rows = cur.execute(
                "DELETE FROM video_uploads WHERE started_at < %s RETURNING id", (started_before,)
            ).fetchall()
        return [r["id"] for r in rows]

    def fail_expired(self) -> builtins.list[str]:
        """Running jobs whose lease expired after their last attempt, now failed; their ids, so
        the caller removes their uploads (the files are not this table's to delete)."""
        params = {"lease": self.lease_s, "max_attempts": self.max_attempts, "reason": failed_reason(self.max_attempts)}
        with self._cursor() as cur:
            return [r["id"] for r in cur.execute(_FAIL_EXPIRED, params).fetchall()]

    def claim_next(self) -> Job | None:
        """The oldest queued job (or one whose lease expired with attempts left), now ``running``
        here; None if none. Jobs out of attempts are :meth:`fail_expired`'s, never claimed again."""
        params = {"lease": self.lease_s, "max_attempts": self.max_attempts}
        with self._cursor() as cur:
            row = cur.execute(_CLAIM, params).fetchone()
        if row is None:
            return None
        with self._lock:
            self._claims[row["id"]] = row["attempts"]
        return Job(**row)

    def _fence(self, job_id: str) -> tuple[str, dict]:
        """SQL and parameters restricting a write to the attempt this process claimed."""
        attempt = self._attempt(job_id)
        return ("" if attempt is None else " AND attempts = %(attempt)s"), {"id": job_id, "attempt": attempt}

    def progress(self, job_id: str, stage: str, frames_done: int, fraction: float) -> bool:
        """Record progress and renew the lease; False when the job is no longer this process's."""
        fence, params = self._fence(job_id)
        params.update(stage=stage, frames_done=frames_done, fraction=round(fraction, 4))
        with self._cursor() as cur:
            cur.execute(
                f"UPDATE video_jobs SET stage = %(stage)s, frames_done = %(frames_done)s, fraction = %(fraction)s, "
                f"heartbeat_at = {NOW} WHERE id = %(id)s AND status = 'running'{fence}",
                params,
            )
            return cur.rowcount == 1

    def heartbeat(self, job_id: str) -> bool:
        """Renew the lease of a running job (a stage without progress reports takes a while)."""
        fence, params = self._fence(job_id)
        with self._cursor() as cur:
            cur.execute(
                f"UPDATE video_jobs SET heartbeat_at = {NOW} WHERE id = %(id)s AND status = 'running'{fence}", params
            )
            return cur.rowcount == 1

    def finish(self, job_id: str, status: str, error: str | None = None, warning: str | None = None) -> None:
        if status not in ("done", "failed", "cancelled"):
            raise ValueError(f"not a final status: {status}")
        fence, params = self._fence(job_id)
        params.update(status=status, error=error, warning=warning)
        done_sql = ", fraction = 1, stage = 'done'" if status == "done" else ""
        with self._cursor() as cur:
            cur.execute(
                f"UPDATE video_jobs SET status = %(status)s, error = %(error)s, warning = %(warning)s, "
                f"finished_at = {NOW}{done_sql} "
                f"WHERE id = %(id)s AND (status = 'queued' OR (status = 'running'{fence}))",
                params,
            )
        self._forget(job_id)

    def requeue(self, job_id: str) -> None:
        """Back to the queue (this replica is stopping); a clean stop is not counted as an attempt."""
        fence, params = self._fence(job_id)
        with self._cursor() as cur:
            cur.execute(
                "UPDATE video_jobs SET status = 'queued', stage = 'queued', frames_done = 0, fraction = 0, "
                f"attempts = GREATEST(attempts - 1, 0) WHERE id = %(id)s AND status = 'running'{fence}",
                params,
            )
        self._forget(job_id)

    def mark_cancelled(self, job_id: str) -> bool:
        with self._cursor() as cur:
            cur.execute(
                "UPDATE video_jobs SET status = 'cancelled', error = 'cancelled by a DELETE request', "
                f"finished_at = {NOW} WHERE id = %s AND status IN ('queued', 'running')",
                (job_id,),
            )
            return cur.rowcount == 1

    def delete(self, job_id: str) -> bool:
        self._forget(job_id)
        with self._cursor() as cur:
            cur.execute("DELETE FROM video_jobs WHERE id = %s", (job_id,))
            return cur.rowcount == 1

    def recover_interrupted(self, max_attempts: int) -> tuple[builtins.list[str], builtins.list[str]]:
        """Running jobs whose lease expired (their replica died): requeued, or failed after
        ``max_attempts``. Rows with a live lease are another replica's work and stay as they are.
        """
        params = {"lease": self.lease_s, "max_attempts": max_attempts, "reason": failed_reason(max_attempts)}
        with self._cursor() as cur:
            failed = [r["id"] for r in cur.execute(_FAIL_EXPIRED, params).fetchall()]
            requeued = [r["id"] for r in cur.execute(_REQUEUE_EXPIRED, params).fetchall()]
        return requeued, failed

    # -- tracks enrolled under a name (see store.py) ---------------------------------------------
    def record_enrollment(self, job_id: str, track_id: int, identity: str, key: str) -> None:
        with self._cursor() as cur:
            cur.execute(
                "INSERT INTO video_track_enrollments (job_id, track_id, identity_key, identity, enrolled_at) "
                f"VALUES (%s, %s, %s, %s, {NOW})",
                (job_id, track_id, key, identity),
            )

    def unrecord_enrollment(self, job_id: str, track_id: int, key: str) -> None:
        with self._cursor() as cur:
            cur.execute(
                "DELETE FROM video_track_enrollments WHERE id = (SELECT max(id) FROM video_track_enrollments "
                "WHERE job_id = %s AND track_id = %s AND identity_key = %s)",
                (job_id, track_id, key),
            )

    def track_erased(self, job_id: str, track_id: int) -> bool:
        with self._cursor() as cur:
            row = cur.execute(
                "SELECT 1 AS erased FROM video_track_enrollments "
                "WHERE job_id = %s AND track_id = %s AND erased_at IS NOT NULL LIMIT 1",
                (job_id, track_id),
            ).fetchone()
        return row is not None

    def enrollments_of(self, key: str) -> builtins.list[TrackEnrollment]:
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT job_id, track_id, enrolled_at FROM video_track_enrollments WHERE identity_key = %s "
                "ORDER BY enrolled_at",
                (key,),
            ).fetchall()
        return [TrackEnrollment(**row) for row in rows]

    def enrolled_identities(self, enrolled_before: float) -> builtins.list[str]:
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT DISTINCT identity FROM video_track_enrollments WHERE identity_key IS NOT NULL "
                "AND enrolled_at < %s",
                (enrolled_before,),
            ).fetchall()
        return [r["identity"] for r in rows]

    def erase_enrollments(self, key: str) -> builtins.list[TrackEnrollment]:
        with self._cursor() as cur:
            rows = cur.execute(
                f"UPDATE video_track_enrollments SET identity_key = NULL, identity = NULL, erased_at = {NOW} "
                "WHERE identity_key = %s RETURNING job_id, track_id, enrolled_at",
                (key,),
            ).fetchall()
        return [TrackEnrollment(**row) for row in rows]

    def reassign_enrollments(self, key: str, identity: str, new_key: str) -> int:
        with self._cursor() as cur:
            cur.execute(
                "UPDATE video_track_enrollments SET identity_key = %s, identity = %s WHERE identity_key = %s",
                (new_key, identity, key),
            )
            return cur.rowcount

    def close(self) -> None:
        self._pool.close()
