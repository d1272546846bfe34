"""Video jobs over HTTP: upload a video, follow its progress, fetch the annotated video, delete it.

The routes only receive, validate and hand over: ``inference_service.videos`` stores and runs the
jobs. A video arrives only as an upload; the API never fetches a URL on a client's behalf.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from os import PathLike
from typing import BinaryIO

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from ..gallery import validate_name
from ..gallery.audit import acting
from ..gallery.names import identity_key
from ..videos import VideoJobs
from ..videos.errors import VideoError, VideoErrorKind
from ..videos.files import JobFiles, new_job_id, valid_job_id
from ..videos.jobs import Job
from ..videos.summary import person_summary
from ..videos.tracks import crop_path, enroll_track, faces_per_track
from ..videos.upload import VideoSink, admit_video
from .audit import enrollment_context
from .deps import JobsDep, ServicesDep
from .file_response import OpenFileResponse
from .schemas import ErrorResponse
from .security import require_api_key, require_read_key
from .video_upload import receive_video

# Reads need a key only with FACE_READ_API_KEY (either key then); writes need FACE_API_KEY's.
router = APIRouter(prefix="/videos", tags=["videos"], dependencies=[Depends(require_read_key)])

JobId = Path(description="The job id returned by POST /videos (32 hex digits).")
MAX_TRACK_FACES = 5
PAGE_SIZE = 100

VIDEO_ERRORS = {
    400: "The body (multipart, or JSON for enroll) or the video is empty or damaged.",
    401: "Missing or wrong X-API-Key (writes: with FACE_API_KEY; reads: with FACE_READ_API_KEY).",
    404: "No such job, or its results were removed after FACE_VIDEO_RETENTION_HOURS.",
    409: (
        "The job is not done yet, its faces come from another embedder than the gallery's, or the track's "
        "faces were erased with the person enrolled from them."
    ),
    408: "The body did not arrive within FACE_BODY_TIMEOUT_S.",
    413: "The video is over FACE_MAX_VIDEO_MB, or its frames are over FACE_MAX_PIXELS.",
    415: "The upload is not a video that can be decoded.",
    422: "A field is missing or invalid, a name is not allowed, or the video is over FACE_MAX_VIDEO_SECONDS.",
    416: "The Range asks for bytes past the end of the file.",
    503: "FACE_MAX_VIDEO_JOBS videos are already waiting or arriving; retry after the Retry-After header's seconds.",
    507: "The disk holding FACE_VIDEO_DIR is full; nothing of the upload was kept.",
}


def error_responses(*codes: int) -> dict[int | str, dict]:
    return {code: {"model": ErrorResponse, "description": VIDEO_ERRORS[code]} for code in codes}


class TrackEnrollRequest(BaseModel):
    name: str = Field(description="Identity to enroll the track's faces under.")
    faces: int = Field(MAX_TRACK_FACES, ge=1, le=MAX_TRACK_FACES, description="How many of the track's best faces.")
    consent: str | None = Field(
        None, max_length=800, description="The person's consent, as for POST /identities/{name}/faces."
    )
    expires_at: str | None = Field(
        None, max_length=64, description="When to erase the person, as for POST /identities/{name}/faces."
    )
    force: bool = Field(
        False,
        description="Also enroll kept faces that fail the quality gate (too small, dark or blurred); without "
        "it they are skipped, and a track with none better is refused with 422 saying why.",
    )


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _path(request: Request, route: str, **params: str) -> str:
    """A URL path (with the app's root path) to one of our routes, never a full URL: the
    ``Host`` header is the client's to choose, so it must not decide where links point."""
    return request.scope.get("root_path", "") + str(request.app.url_path_for(route, **params))


def _job_json(job: Job, request: Request) -> dict:
    return {
        "id": job.id,
        "url": _path(request, "get_video", job_id=job.id),
        "status": job.status,
        "filename": job.filename,
        "size_bytes": job.size_bytes,
        "duration_s": round(job.duration_s, 3),
        "progress": {
            "stage": job.stage,
            "frames_done": job.frames_done,
            "frames_total": job.frames_total,
            "fraction": round(job.fraction, 4),
        },
        "error": job.error,
        "warning": job.warning,
        "attempts": job.attempts,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }


def _job_or_404(jobs: VideoJobs, job_id: str) -> Job:
    job = jobs.store.get(job_id) if valid_job_id(job_id) else None
    if job is None:
        raise HTTPException(404, f"no video job {job_id!r}")
    return job


@router.post(
    "",
    status_code=202,
    responses=error_responses(400, 401, 408, 413, 415, 422, 503, 507),
    dependencies=[Depends(require_api_key)],
    summary="Upload a video (multipart field 'video') to be analysed: 202 with the job's id and URL",
    # The body is parsed as a stream (see videos/upload.py), so FastAPI cannot infer it: declared here.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["video"],
                        "properties": {
                            "video": {
                                "type": "string",
                                "format": "binary",
                                "description": "The video file (MP4, WebM, MOV...), at most FACE_MAX_VIDEO_MB MiB.",
                            }
                        },
                    }
                }
            },
        }
    },
)
async def create_video(jobs: JobsDep, request: Request) -> dict:
    """A slot is reserved before the first byte is read, so uploads in progress count toward
    FACE_MAX_VIDEO_JOBS with the jobs, and the disk they can take is bounded by it."""
    settings = jobs.settings
    files = JobFiles(jobs.root, new_job_id())
    if not await run_in_threadpool(jobs.store.reserve, files.job_id, settings.max_video_jobs):
        raise VideoError(
            VideoErrorKind.BUSY,
            f"{settings.max_video_jobs} videos are already waiting or arriving (FACE_MAX_VIDEO_JOBS); try again later",
        )
    try:
        files.folder.mkdir(parents=True)
        sink = VideoSink(files.partial_upload, settings.max_video_mb)
        filename = await receive_video(request, sink)
        info = await run_in_threadpool(
            admit_video, files.partial_upload, settings.max_video_seconds, settings.max_pixels
        )
        files.partial_upload.replace(files.upload)
        job = Job(
            id=files.job_id,
            status="queued",
            filename=filename,
            size_bytes=sink.size,
            duration_s=info.duration,
            frames_total=info.frame_count,
            created_at=time.time(),
        )
        await run_in_threadpool(jobs.store.admit, job)
    except BaseException:
        files.remove_all()
        jobs.store.release(files.job_id)
        raise
    jobs.wake()
    return _job_json(job, request)


@router.get("", responses=error_responses(401, 422), summary="The video jobs, newest first, a page at a time")
def list_videos(
    jobs: JobsDep,
    request: Request,
    limit: int = Query(PAGE_SIZE, ge=1, le=PAGE_SIZE, description="Jobs per page."),
    offset: int = Query(0, ge=0, le=10**9, description="Jobs to skip (the 'next' link of the previous page)."),
) -> dict:
    """``next`` is the path of the following page, null on the last one."""
    page = jobs.store.list(limit + 1, offset)
    following = f"{_path(request, 'list_videos')}?limit={limit}&offset={offset + limit}"
    return {
        "videos": [_job_json(job, request) for job in page[:limit]],
        "next": following if len(page) > limit else None,
    }


@router.get(
    "/{job_id}",
    name="get_video",
    responses=error_responses(401, 404, 422),
    summary="A job's status and progress; when done its timeline and per-person screen time",
)
def get_video(jobs: JobsDep, request: Request, job_id: str = JobId) -> dict:
    job = _job_or_404(jobs, job_id)
    body = _job_json(job, request)
    if job.status == "done":
        files = jobs.files(job.id)
        try:
            timeline = json.loads(files.timeline.read_text())
        except FileNotFoundError:
            raise HTTPException(404, "this job's results were removed") from None
        body["annotated_url"] = _path(request, "get_annotated", job_id=job.id)
        body["timeline"] = timeline
        body["summary"] = person_summary(timeline)
        body["track_faces"] = {str(k): v for k, v in faces_per_track(files).items()}
    return body


def _open_or_404(path: PathLike | None, missing: str) -> BinaryIO:
    """The file opened now, so that a DELETE racing the answer cannot pull it away half-sent."""
    try:
        if path is None:
            raise FileNotFoundError(missing)
        return open(path, "rb")
    except (FileNotFoundError, IsADirectoryError):
        raise HTTPException(404, missing) from None


ANNOTATED_RESPONSES: dict[int | str, dict] = {
    **error_responses(401, 404, 416, 422),
    200: {"content": {"video/mp4": {}}},
    206: {"description": "A byte range of it."},
}


@router.get(
    "/{job_id}/annotated",
    name="get_annotated",
    response_class=Response,
    responses=ANNOTATED_RESPONSES,
    summary="The annotated video (H.264 MP4; Range requests supported)",
)
def get_annotated(jobs: JobsDep, request: Request, job_id: str = JobId) -> Response:
    job = _job_or_404(jobs, job_id)
    missing = f"the annotated video is not ready (job {job.status})"
    fh = _open_or_404(jobs.files(job.id).annotated if job.status == "done" else None, missing)
    return OpenFileResponse(fh, "video/mp4", request.headers.get("range"), filename=f"annotated-{job.id}.mp4")


@router.head(
    "/{job_id}/annotated",
    name="head_annotated",
    response_class=Response,
    responses=ANNOTATED_RESPONSES,
    summary="The annotated video's headers (size, type) without its bytes",
)
def head_annotated(jobs: JobsDep, request: Request, job_id: str = JobId) -> Response:
    return get_annotated(jobs=jobs, request=request, job_id=job_id)


@router.get(
    "/{job_id}/tracks/{track_id}/faces/{number}",
    response_class=Response,
    responses={**error_responses(401, 404, 422), 200: {"content": {"image/jpeg": {}}}},
    summary="One of the faces kept for a track (JPEG), as enrolling it would store",
)
def get_track_face(
    jobs: JobsDep,
    job_id: str = JobId,
    track_id: int = Path(ge=1),
    number: int = Path(ge=0, lt=MAX_TRACK_FACES),
) -> Response:
    job = _job_or_404(jobs, job_id)
    path = crop_path(jobs.files(job.id), track_id, number) if job.status == "done" else None
    return OpenFileResponse(_open_or_404(path, f"no face {number} kept for track {track_id}"), "image/jpeg")


@router.post(
    "/{job_id}/tracks/{track_id}/enroll",
    status_code=201,
    responses=error_responses(400, 401, 404, 409, 422),
    dependencies=[Depends(require_api_key)],
    summary="Enroll a track's best faces (kept by the analysis) under a name",
)
def enroll_from_track(
    jobs: JobsDep,
    services: ServicesDep,
    request: Request,
    body: TrackEnrollRequest,
    job_id: str = JobId,
    track_id: int = Path(ge=1),
) -> dict:
    name = validate_name(body.name)
    context = enrollment_context(request, services, body.consent, body.expires_at)  # audited, consent checked
    job = _job_or_404(jobs, job_id)
    if job.status != "done":
        raise HTTPException(409, f"the job is {job.status}; tracks can be enrolled once it is done")
    if jobs.store.track_erased(job.id, track_id):
        raise VideoError(
            VideoErrorKind.ERASED,
            f"the faces of track {track_id} were erased with the person enrolled from them; "
            "they cannot be enrolled again",
        )
    # Recorded before the gallery stores anything, so no enrolled track escapes the person's erasure.
    key = identity_key(name)
    jobs.store.record_enrollment(job.id, track_id, name, key)
    try:
        with acting(context):
            return enroll_track(jobs.files(job.id), track_id, name, jobs.gallery, body.faces, body.force)
    except BaseException:
        jobs.store.unrecord_enrollment(job.id, track_id, key)
        raise


@router.delete(
    "/{job_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 404, 422),
    dependencies=[Depends(require_api_key)],
    summary="Cancel the job if it runs and delete every file of it",
)
def delete_video(jobs: JobsDep, job_id: str = JobId) -> Response:
    if not valid_job_id(job_id) or not jobs.cancel_and_delete(job_id):
        raise HTTPException(404, f"no video job {job_id!r}")
    return Response(status_code=204)
