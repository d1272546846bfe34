"""Where a job's files live: ``FACE_VIDEO_DIR/<id>/`` holds the upload and the results, nothing else.

One folder per job makes "delete every file of a job" one ``rmtree``; ids are 32 hex digits
(checked before any path is built), so no request can name a path outside the jobs' folder.
"""

from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
JOBS_DB = "jobs.sqlite3"


def new_job_id() -> str:
    return uuid.uuid4().hex


def valid_job_id(job_id: str) -> bool:
    return bool(JOB_ID.fullmatch(job_id))


@dataclass(frozen=True)
class JobFiles:
    root: Path
    job_id: str

    def __post_init__(self) -> None:
        if not valid_job_id(self.job_id):
            raise ValueError(f"not a job id: {self.job_id!r}")

    @property
    def folder(self) -> Path:
        return self.root / self.job_id

    @property
    def upload(self) -> Path:
        """The uploaded video, deleted when the job ends."""
        return self.folder / "upload.video"

    @property
    def partial_upload(self) -> Path:
        return self.folder / ".upload.partial"

    @property
    def results(self) -> Path:
        return self.folder / "result"

    @property
    def annotated(self) -> Path:
        return self.results / "annotated.mp4"

    @property
    def timeline(self) -> Path:
        return self.results / "timeline.json"

    def remove_all(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def remove_upload(self) -> None:
        self.upload.unlink(missing_ok=True)
        self.partial_upload.unlink(missing_ok=True)
