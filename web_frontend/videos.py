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

import hashlib
import json
from typing import Any, cast
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
from .quality_gate import quality_refusal, skipped_note
from .timeline_image import UNKNOWN_ROW, rows_of, timeline_png
from .track_namings import forced_offer, forget, namings, offer_force, remember
from .video_tracks import not_nameable_because, person_summary, unknown_tracks, with_namings
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
        str(p.get("stage")), "Starting"
    )
    return f"{stage}: frame {p.get('frames_done', 0)} of {p.get('frames_total', '?')} ({100 * float(p.get('fraction') or 0):.0f}%)"


def _named_here(job_id: str) -> dict[int, str]:
    """Track id -> person, for the tracks of this job this browser named (the API's job predates them)."""
    return {track: naming["name"] for track, naming in namings(job_id).items()}


def _timeline_version(named: dict[int, str]) -> str:
    """Part of the timeline image's URL, so a naming or an undo is not hidden by the browser's cache."""
    return hashlib.sha256(json.dumps(sorted(named.items())).encode()).hexdigest()[:12] if named else "0"


def job_or_abort(job_id: str) -> dict[str, Any]:
    try:
        return cast(dict[str, Any], face_api().video(job_id))
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
    done = job.get("status") == "done" and bool(job.get("timeline"))
    named = namings(job_id) if done else {}
    summary = job.get("summary") or {}
    timeline = job.get("timeline")
    if named and timeline:
        timeline = with_namings(timeline, {track: n["name"] for track, n in named.items()})
        summary = person_summary(timeline)
    people = summary.get("people", [])
    nameable, apart = unknown_tracks(job, named) if done else ([], [])
    return render_template(
        "video.html",
        job=job,
        refresh=REFRESH_S if running else None,
        progress_text=_progress_text(job) if running else None,
        status_words=STATUS_WORDS,
        people=people,
        unknown=summary.get("unknown"),
        unknown_tracks=nameable,
        unnameable_tracks=apart,
        named_tracks=sorted(named.items()),
        timeline_version=_timeline_version(_named_here(job_id)) if done else "0",
        timeline_rows=len(rows_of(timeline, [p["identity"] for p in people])) if timeline else 0,
        unknown_row=UNKNOWN_ROW,
        force_track=forced_offer(job_id) if done else None,
    )


@bp.get("/videos/<job_id>/status")
def status(job_id: str):
    """What the progress script shows: the words the page would render, never the API's URLs."""
    job = job_or_abort(job_id)
    progress = job.get("progress") or {}
    running = job.get("status") in ("queued", "running")
    answer = {
        "status": job.get("status"),
        "status_word": STATUS_WORDS.get(str(job.get("status")), job.get("status")),
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
    named = _named_here(job_id)
    timeline = with_namings(job["timeline"], named)
    summary = person_summary(timeline) if named else job.get("summary") or {}
    order = [p["identity"] for p in summary.get("people", [])]
    return Response(
        timeline_png(timeline, order), mimetype="image/png", headers={"Cache-Control": "private, max-age=60"}
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


def _refusal(job_id: str, track_id: int) -> str | None:
    """Why this track may not be named from the page, if it may not (the page offers no form for it)."""
    if track_id in namings(job_id):
        return f"Track {track_id} is already named here; undo that naming first."
    job = job_or_abort(job_id)
    track = next((t for t in (job.get("timeline") or {}).get("tracks", []) if t["track_id"] == track_id), None)
    if track is None:
        return f"This video has no track {track_id}."
    if track.get("identity") is not None:
        return f"Track {track_id} was already recognised as {track['identity']}."
    reason = not_nameable_because(track, int((job.get("timeline") or {}).get("min_faces") or 1))
    return f"Track {track_id} cannot be named: {reason}." if reason else None


@bp.post("/videos/<job_id>/tracks/<int:track_id>/enroll")
def enroll_track(job_id: str, track_id: int):
    name = request.form.get("name", "").strip()
    anchor = f"#track-{track_id}"
    if not name:
        flash("Enter the person's name.", "error")
    elif request.form.get("consent") != "yes":
        flash("Tick the box to confirm that this person agreed to be enrolled.", "error")
    elif (refused := _refusal(job_id, track_id)) is not None:
        flash(refused, "error")
    else:
        force = request.form.get("force") == "yes"
        try:
            result = face_api().enroll_track(job_id, track_id, name, consent_record("", "Video"), force=force)
        except ApiError as exc:
            refusal = None if force else quality_refusal(exc)
            if refusal is not None:
                offer_force(job_id, track_id)
            flash(refusal or exc.message, "error")
        else:
            added = [str(f["face_id"]) for f in result.get("added") or []]
            person = result.get("identity", name)
            remember(job_id, track_id, person, added)
            note = skipped_note(result)
            flash(
                f"Added {len(added)} face{'' if len(added) == 1 else 's'} of track {track_id} to {person}."
                + (f" {note}" if note else ""),
                "ok",
            )
            anchor = f"#named-{track_id}"
    return redirect(url_for("videos.page", job_id=job_id) + anchor, code=303)


@bp.post("/videos/<job_id>/tracks/<int:track_id>/undo")
def undo_naming(job_id: str, track_id: int):
    """Delete exactly the faces a naming of this browser added (the person goes with their last face)."""
    naming = namings(job_id).get(track_id)
    if naming is None:
        flash(f"There is no naming of track {track_id} to undo here.", "error")
        return redirect(url_for("videos.page", job_id=job_id), code=303)
    removed = 0
    for face_id in naming["face_ids"]:
        try:
            face_api().delete_face(naming["name"], face_id)
            removed += 1
        except ApiError as exc:
            if exc.status != 404:  # a face already removed elsewhere is as good as undone
                flash(f"Undo stopped: {exc.message}", "error")
                return redirect(url_for("videos.page", job_id=job_id) + f"#named-{track_id}", code=303)
    forget(job_id, track_id)
    flash(
        f"Undone: removed {removed} face{'' if removed == 1 else 's'} of track {track_id} from {naming['name']}.", "ok"
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
