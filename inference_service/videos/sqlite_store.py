"""Video jobs in a SQLite file of their own: ``SQLiteJobStore``.

The file is the jobs' own (``FACE_VIDEO_DIR/jobs.sqlite3``), not the gallery's, so the
gallery's schema and migrations stay untouched. On a PostgreSQL gallery the jobs live in that
database instead (``pg_store.PostgresJobStore``, same methods), so any replica may take them.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import asdict
from pathlib import Path

from .jobs import Job

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
    heartbeat_at REAL
);
CREATE INDEX IF NOT EXISTS video_jobs_queue ON video_jobs (status, created_at);
"""


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

    # -- reads --------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM video_jobs WHERE id = ?", (job_id,)).fetchone()
        return Job(**dict(row)) if row else None

    def list(self, limit: int = 100) -> list[Job]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM video_jobs ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
        return [Job(**dict(r)) for r in rows]

    def count_unfinished(self) -> int:
        with self._lock:
            return int(
                self._db.execute("SELECT COUNT(*) FROM video_jobs WHERE status IN ('queued', 'running')").fetchone()[0]
            )

    def finished_before(self, cutoff: float) -> list[str]:
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

    def finish(self, job_id: str, status: str, error: str | None = None) -> None:
        if status not in ("done", "failed", "cancelled"):
            raise ValueError(f"not a final status: {status}")
        fraction_sql = ", fraction = 1, stage = 'done'" if status == "done" else ""
        with self._transaction() as db:
            db.execute(
                f"UPDATE video_jobs SET status = ?, error = ?, finished_at = ?{fraction_sql} "
                "WHERE id = ? AND status IN ('queued', 'running')",
                (status, error, time.time(), job_id),
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

    def recover_interrupted(self, max_attempts: int) -> tuple[list[str], list[str]]:
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

    def close(self) -> None:
        with self._lock:
            self._db.close()


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
