"""Video jobs in a SQLite file of their own: ``SQLiteJobStore``.

The file is the jobs' own (``FACE_VIDEO_DIR/jobs.sqlite3``), not the gallery's, so the
gallery's schema and migrations stay untouched. On a PostgreSQL gallery the jobs live in that
database instead (``pg_store.PostgresJobStore``, same methods), so any replica may take them.
"""

from __future__ import annotations

import builtins
import sqlite3
import threading
import time
from dataclasses import asdict
from pathlib import Path

from .jobs import Job, TrackEnrollment

SCHEMA = """
CREATE TABLE IF NOT EXISTS video_jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    filename TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    duration_s REAL NOT NULL,
    frames_total INTEGER NOT NULL,
    frames_done INTEGER NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT 'queued',
    fraction REAL NOT NULL DEFAULT 0,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    heartbeat_at REAL,
    warning TEXT
);
CREATE INDEX IF NOT EXISTS video_jobs_queue ON video_jobs (status, created_at);
CREATE TABLE IF NOT EXISTS video_uploads (
    id TEXT PRIMARY KEY,
    started_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS video_track_enrollments (
    job_id TEXT NOT NULL,
    track_id INTEGER NOT NULL,
    identity_key TEXT,
    identity TEXT,
    enrolled_at REAL NOT NULL,
    erased_at REAL
);
CREATE INDEX IF NOT EXISTS video_track_enrollments_key ON video_track_enrollments (identity_key);
CREATE INDEX IF NOT EXISTS video_track_enrollments_track ON video_track_enrollments (job_id, track_id);
"""
# Columns added after the first release, with their type: added to an older file at open.
ADDED_COLUMNS = {"warning": "TEXT"}


class SQLiteJobStore:
    """``video_jobs`` in one SQLite file (WAL); one connection guarded by a lock."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE for the claim).
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            present = {row[1] for row in self._db.execute("PRAGMA table_info(video_jobs)")}
            for column, kind in ADDED_COLUMNS.items():
                if column not in present:
                    self._db.execute(f"ALTER TABLE video_jobs ADD COLUMN {column} {kind}")

    # -- reads --------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM video_jobs WHERE id = ?", (job_id,)).fetchone()
        return Job(**dict(row)) if row else None

    def list(self, limit: int = 100, offset: int = 0) -> builtins.list[Job]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM video_jobs ORDER BY created_at DESC, id LIMIT ? OFFSET ?", (limit, offset)
            ).fetchall()
        return [Job(**dict(r)) for r in rows]

    def count_unfinished(self) -> int:
        """Jobs waiting or running, and uploads in progress: the slots FACE_MAX_VIDEO_JOBS bounds."""
        with self._lock:
            return _slots_taken(self._db)

    def finished_before(self, cutoff: float) -> builtins.list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM video_jobs WHERE status NOT IN ('queued', 'running') AND finished_at < ?", (cutoff,)
            ).fetchall()
        return [r[0] for r in rows]

    # -- writes -------------------------------------------------------------------------------
    def _transaction(self) -> _Tx:
        return _Tx(self._db, self._lock)

    def create(self, job: Job) -> None:
        row = asdict(job)
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._transaction() as db:
            db.execute(f"INSERT INTO video_jobs ({columns}) VALUES ({marks})", tuple(row.values()))

    def reserve(self, job_id: str, cap: int) -> bool:
        """Hold a slot for an upload about to be read; False when ``cap`` slots are taken."""
        with self._transaction() as db:
            if _slots_taken(db) >= cap:
                return False
            db.execute("INSERT INTO video_uploads (id, started_at) VALUES (?, ?)", (job_id, time.time()))
            return True

    def admit(self, job: Job) -> None:
        """The upload's reservation becomes the queued ``job``, in one transaction."""
        row = asdict(job)
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._transaction() as db:
            db.execute(f"INSERT INTO video_jobs ({columns}) VALUES ({marks})", tuple(row.values()))
            db.execute("DELETE FROM video_uploads WHERE id = ?", (job.id,))

    def release(self, job_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM video_uploads WHERE id = ?", (job_id,))

    def stale_uploads(self, started_before: float) -> builtins.list[str]:
        """Reservations of uploads that began before ``started_before`` (their request is long
        over: a process killed mid-upload), now removed; their ids, for their folders to go too."""
        with self._transaction() as db:
            rows = db.execute("SELECT id FROM video_uploads WHERE started_at < ?", (started_before,)).fetchall()
            db.execute("DELETE FROM video_uploads WHERE started_at < ?", (started_before,))
        return [r[0] for r in rows]

    def fail_expired(self) -> builtins.list[str]:
        """Only one process uses a SQLite job file: no lease can expire (see ``recover_interrupted``)."""
        return []

    def claim_next(self) -> Job | None:
        """The oldest queued job, now ``running`` and counted as one more attempt; None if none."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT id FROM video_jobs WHERE status = 'queued' ORDER BY created_at LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE video_jobs SET status = 'running', stage = 'starting', attempts = attempts + 1, "
                "started_at = ?, heartbeat_at = ?, frames_done = 0, fraction = 0 WHERE id = ? AND status = 'queued'",
                (now, now, row[0]),
            )
            claimed = db.execute("SELECT * FROM video_jobs WHERE id = ?", (row[0],)).fetchone()
        return Job(**dict(claimed))

    def progress(self, job_id: str, stage: str, frames_done: int, fraction: float) -> bool:
        """Record progress of a running job; False when it is no longer running (cancelled, gone)."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE video_jobs SET stage = ?, frames_done = ?, fraction = ?, heartbeat_at = ? "
                "WHERE id = ? AND status = 'running'",
                (stage, frames_done, round(fraction, 4), time.time(), job_id),
            )
            return cursor.rowcount == 1

    def heartbeat(self, job_id: str) -> bool:
        """Only one process uses a SQLite job file: nobody else needs to know it is alive."""
        return True

    def finish(self, job_id: str, status: str, error: str | None = None, warning: str | None = None) -> None:
        if status not in ("done", "failed", "cancelled"):
            raise ValueError(f"not a final status: {status}")
        fraction_sql = ", fraction = 1, stage = 'done'" if status == "done" else ""
        with self._transaction() as db:
            db.execute(
                f"UPDATE video_jobs SET status = ?, error = ?, warning = ?, finished_at = ?{fraction_sql} "
                "WHERE id = ? AND status IN ('queued', 'running')",
                (status, error, warning, time.time(), job_id),
            )

    def requeue(self, job_id: str) -> None:
        """A running job goes back to the queue (its worker is stopping; the upload is kept).

        A clean shutdown is not the video's fault, so that start is not counted as an attempt.
        """
        with self._transaction() as db:
            db.execute(
                "UPDATE video_jobs SET status = 'queued', stage = 'queued', frames_done = 0, fraction = 0, "
                "attempts = MAX(attempts - 1, 0) WHERE id = ? AND status = 'running'",
                (job_id,),
            )

    def mark_cancelled(self, job_id: str) -> bool:
        """Cancel a queued or running job; False when it was not unfinished."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE video_jobs SET status = 'cancelled', error = 'cancelled by a DELETE request', finished_at = ? "
                "WHERE id = ? AND status IN ('queued', 'running')",
                (time.time(), job_id),
            )
            return cursor.rowcount == 1

    def delete(self, job_id: str) -> bool:
        with self._transaction() as db:
            return db.execute("DELETE FROM video_jobs WHERE id = ?", (job_id,)).rowcount == 1

    def recover_interrupted(self, max_attempts: int) -> tuple[builtins.list[str], builtins.list[str]]:
        """After a restart: rows left ``running`` are requeued, or failed after ``max_attempts``.

        Only one process uses a SQLite job file, so at its start nothing else can be running them.
        Returns (requeued ids, failed ids).
        """
        reason = (
            f"the service stopped while analysing this video {max_attempts} times; "
            "it was not tried again (upload it again, or a shorter part of it)"
        )
        with self._transaction() as db:
            rows = db.execute("SELECT id, attempts FROM video_jobs WHERE status = 'running'").fetchall()
            failed = [r[0] for r in rows if r[1] >= max_attempts]
            requeued = [r[0] for r in rows if r[1] < max_attempts]
            for job_id in failed:
                db.execute(
                    "UPDATE video_jobs SET status = 'failed', error = ?, finished_at = ? WHERE id = ?",
                    (reason, time.time(), job_id),
                )
            for job_id in requeued:
                db.execute(
                    "UPDATE video_jobs SET status = 'queued', stage = 'queued', frames_done = 0, fraction = 0 WHERE id = ?",
                    (job_id,),
                )
        return requeued, failed

    # -- tracks enrolled under a name ------------------------------------------------------------
    def record_enrollment(self, job_id: str, track_id: int, identity: str, key: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO video_track_enrollments (job_id, track_id, identity_key, identity, enrolled_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (job_id, track_id, key, identity, time.time()),
            )

    def unrecord_enrollment(self, job_id: str, track_id: int, key: str) -> None:
        """Undo :meth:`record_enrollment` of an enrollment that failed (nothing was stored)."""
        with self._transaction() as db:
            db.execute(
                "DELETE FROM video_track_enrollments WHERE rowid = (SELECT max(rowid) FROM video_track_enrollments "
                "WHERE job_id = ? AND track_id = ? AND identity_key = ?)",
                (job_id, track_id, key),
            )

    def track_erased(self, job_id: str, track_id: int) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM video_track_enrollments WHERE job_id = ? AND track_id = ? AND erased_at IS NOT NULL",
                (job_id, track_id),
            ).fetchone()
        return row is not None

    def enrollments_of(self, key: str) -> builtins.list[TrackEnrollment]:
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, track_id, enrolled_at FROM video_track_enrollments WHERE identity_key = ? "
                "ORDER BY enrolled_at",
                (key,),
            ).fetchall()
        return [TrackEnrollment(*row) for row in rows]

    def enrolled_identities(self, enrolled_before: float) -> builtins.list[str]:
        """The names tracks were enrolled under before ``enrolled_before`` and not erased yet."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT identity FROM video_track_enrollments WHERE identity_key IS NOT NULL "
                "AND enrolled_at < ?",
                (enrolled_before,),
            ).fetchall()
        return [r[0] for r in rows]

    def erase_enrollments(self, key: str) -> builtins.list[TrackEnrollment]:
        """The tracks enrolled under ``key``, whose records now keep no name, only the erasure."""
        with self._transaction() as db:
            rows = db.execute(
                "UPDATE video_track_enrollments SET identity_key = NULL, identity = NULL, erased_at = ? "
                "WHERE identity_key = ? RETURNING job_id, track_id, enrolled_at",
                (time.time(), key),
            ).fetchall()
        return [TrackEnrollment(*row) for row in rows]

    def reassign_enrollments(self, key: str, identity: str, new_key: str) -> int:
        """The person enrolled as ``key`` is now ``identity`` (renamed, merged): their tracks follow."""
        with self._transaction() as db:
            return db.execute(
                "UPDATE video_track_enrollments SET identity_key = ?, identity = ? WHERE identity_key = ?",
                (new_key, identity, key),
            ).rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _slots_taken(db: sqlite3.Connection) -> int:
    jobs = db.execute("SELECT COUNT(*) FROM video_jobs WHERE status IN ('queued', 'running')").fetchone()[0]
    uploads = db.execute("SELECT COUNT(*) FROM video_uploads").fetchone()[0]
    return int(jobs) + int(uploads)


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) under the store's lock."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self.db = db
        self.lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()
