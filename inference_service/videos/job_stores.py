"""Which job store goes with a gallery: the one decision, so the workers never ask what kind it is.

A PostgreSQL gallery keeps the jobs in its database (every replica takes from one queue); any
other gallery has them in a SQLite file of their own in the jobs' folder, beside the gallery file
unless ``FACE_VIDEO_DIR`` says otherwise.
"""

from __future__ import annotations

from pathlib import Path

from ..gallery.factory import is_postgres, local_folder
from .files import JOBS_DB
from .jobs import JobStore

DEFAULT_VIDEO_DIR = Path("data/videos")


def jobs_folder(gallery_url: str | Path, configured: Path | None = None) -> Path:
    """``configured`` (FACE_VIDEO_DIR), else ``videos/`` beside a SQLite gallery file, else
    ``data/videos`` (a database server: with several replicas, configure a folder they share)."""
    if configured is not None:
        return configured
    folder = local_folder(gallery_url)
    return DEFAULT_VIDEO_DIR if folder is None else folder / "videos"


def open_job_store(
    gallery_url: str | Path, folder: Path, *, lease_s: float, max_attempts: int, pool_size: int
) -> JobStore:
    """The job store for ``gallery_url``; ``folder`` holds the SQLite file when there is one."""
    if is_postgres(gallery_url):
        from .pg_store import PostgresJobStore  # psycopg only loads for a PostgreSQL gallery

        return PostgresJobStore(str(gallery_url), lease_s=lease_s, max_attempts=max_attempts, pool_size=pool_size)
    from .sqlite_store import SQLiteJobStore

    return SQLiteJobStore(folder / JOBS_DB)
