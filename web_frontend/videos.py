"""The site's Video pages: upload a video, watch its progress, see and name who is in it.

A video upload arrives in a temporary file (:mod:`web_frontend.video_upload`, installed when this
blueprint is registered) and the view streams that file to the API. Progress works without any
script: the job's page refreshes itself (``<meta http-equiv="refresh">`` inside ``<noscript>``)
until the job ends. With JavaScript, ``static/video_progress.js`` instead polls the job's status
JSON (``/videos/<id>/status``) and moves the progress bar in place, reloading once the job ended.
The annotated video and the face crops are streamed from the API through the site (Range
requests passed on), so the browser only ever talks to the site.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.blueprints import BlueprintSetupState

from face_client import ApiError

from .consent import consent_record
from .context import SETTINGS, face_api
from .timeline_image import UNKNOWN_ROW, rows_of, timeline_png
from .video_upload import UPLOAD_PATH, install_video_uploads

bp = Blueprint("videos", __name__)


@bp.record_once
def _install_video_uploads(state: BlueprintSetupState) -> None:
    assert isinstance(state.app, Flask)
    install_video_uploads(state.app, state.app.extensions[SETTINGS])


REFRESH_S = 2
PASSED_HEADERS = ("Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "Last-Modified", "ETag")
STATUS_WORDS = {
    "queued": "Waiting",
    "running": "Analysing",
    "done": "Done",
    "failed": "Failed",
    "cancelled": "Cancelled",
}


def _progress_text(job: dict) -> str:
    p = job.get("progress") or {}
    if job.get("status") == "queued":
        return "Waiting for a free video worker…"
    stage = {"analysing": "Finding and following faces", "rendering": "Drawing the annotated video"}.get(
        p.get("stage"), "Starting"
    )
    return f"{stage}: frame {p.get('frames_done', 0)} of {p.get('frames_total', '?')} ({100 * float(p.get('fraction') or 0):.0f}%)"


def _unknown_tracks(job: dict) -> list[dict[str, Any]]:
    """Unknown tracks with kept faces, longest first: the ones worth naming."""
    kept = job.get("track_faces") or {}
    tracks = [
        t
        for t in (job.get("timeline") or {}).get("tracks", [])
        if t.get("identity") is None and kept.get(str(t["track_id"]))
    ]
    tracks.sort(key=lambda t: (-(t["end"] - t["start"]), t["track_id"]))
    return [
        {"track_id": t["track_id"], "start": t["start"], "end": t["end"], "faces": kept[str(t["track_id"])]}
        for t in tracks
    ]


def job_or_abort(job_id: str) -> dict:
    try:
        return face_api().video(job_id)
    except ApiError as exc:
        abort(exc.status if exc.status in (404, 422) else 502, description=exc.message)


@bp.get("/videos")
def index():
    try:
        jobs = face_api().videos()
    except ApiError as exc:
        return render_template("videos.html", jobs=None, error=exc.message, status_words=STATUS_WORDS), exc.status
    return render_template("videos.html", jobs=jobs, status_words=STATUS_WORDS)


@bp.post(UPLOAD_PATH)
def upload():
    storage = request.files.get("video")
    if storage is None or not storage.filename:
        return render_template(
            "videos.html", jobs=[], error="Choose a video to upload.", status_words=STATUS_WORDS
        ), 400
    try:
        storage.stream.seek(0)
        job = face_api().upload_video(storage.filename, storage.mimetype, storage.stream)
    except ApiError as exc:
        message = f"The video was not accepted: {exc.detail}" if exc.detail else exc.message
        return render_template("videos.html", jobs=[], error=message, status_words=STATUS_WORDS), exc.status
    finally:
        storage.close()
    return redirect(url_for("videos.page", job_id=job["id"]), code=303)


@bp.get("/videos/<job_id>")
def page(job_id: str):
    job = job_or_abort(job_id)
    running = job.get("status") in ("queued", "running")
    people = (job.get("summary") or {}).get("people", [])
    return render_template(
        "video.html",
        job=job,
        refresh=REFRESH_S if running else None,
        progress_text=_progress_text(job) if running else None,
        status_words=STATUS_WORDS,
        people=people,
        unknown=(job.get("summary") or {}).get("unknown"),
        unknown_tracks=_unknown_tracks(job) if job.get("status") == "done" else [],
        timeline_rows=len(rows_of(job["timeline"], [p["identity"] for p in people])) if job.get("timeline") else 0,
        unknown_row=UNKNOWN_ROW,
    )


@bp.get("/videos/<job_id>/status")
def status(job_id: str):
    """What the progress script shows: the words the page would render, never the API's URLs."""
    job = job_or_abort(job_id)
    progress = job.get("progress") or {}
    running = job.get("status") in ("queued", "running")
    answer = {
        "status": job.get("status"),
        "status_word": STATUS_WORDS.get(job.get("status"), job.get("status")),
        "fraction": float(progress.get("fraction") or 0),
        "frames_done": progress.get("frames_done", 0),
        "frames_total": progress.get("frames_total"),
        "text": _progress_text(job) if running else None,
    }
    return answer, 200, {"Cache-Control": "no-store"}  # Flask answers a dict as JSON


@bp.get("/videos/<job_id>/timeline.png")
def timeline(job_id: str):
    job = job_or_abort(job_id)
    if job.get("status") != "done":
        abort(404, description="The video is not analysed yet.")
    order = [p["identity"] for p in (job.get("summary") or {}).get("people", [])]
    return Response(
        timeline_png(job["timeline"], order), mimetype="image/png", headers={"Cache-Control": "private, max-age=60"}
    )


def proxy(path: str):
    try:
        upstream = face_api().stream(path, request.headers.get("Range"))
    except ApiError as exc:
        abort(exc.status if exc.status in (404, 416) else 502, description=exc.message)
    headers = {k: upstream.headers[k] for k in PASSED_HEADERS if k in upstream.headers}

    def body():
        try:
            yield from upstream.iter_content(chunk_size=256 * 1024)
        finally:
            upstream.close()

    return Response(stream_with_context(body()), status=upstream.status_code, headers=headers, direct_passthrough=True)


@bp.get("/videos/<job_id>/annotated.mp4")
def annotated(job_id: str):
    return proxy(f"/videos/{quote(job_id, safe='')}/annotated")


@bp.get("/videos/<job_id>/tracks/<int:track_id>/faces/<int:number>.jpg")
def track_face(job_id: str, track_id: int, number: int):
    return proxy(f"/videos/{quote(job_id, safe='')}/tracks/{track_id}/faces/{number}")


@bp.post("/videos/<job_id>/tracks/<int:track_id>/enroll")
def enroll_track(job_id: str, track_id: int):
    name = request.form.get("name", "").strip()
    if not name:
        flash("Enter the person's name.", "error")
    elif request.form.get("consent") != "yes":
        flash("Tick the box to confirm that this person agreed to be enrolled.", "error")
    else:
        try:
            result = face_api().enroll_track(job_id, track_id, name, consent_record("", "Video"))
        except ApiError as exc:
            flash(exc.message, "error")
        else:
            added = len(result.get("added") or [])
            flash(
                f"Added {added} face{'' if added == 1 else 's'} of track {track_id} to {result.get('identity', name)}.",
                "ok",
            )
    return redirect(url_for("videos.page", job_id=job_id) + f"#track-{track_id}", code=303)


@bp.post("/videos/<job_id>/delete")
def delete(job_id: str):
    try:
        face_api().delete_video(job_id)
    except ApiError as exc:
        if exc.status != 404:
            flash(exc.message, "error")
            return redirect(url_for("videos.page", job_id=job_id), code=303)
    flash("Deleted the video and everything made from it.", "ok")
    return redirect(url_for("videos.index"), code=303)
