"""The Live page (the browser's camera, each face boxed and named as the API's /live answers) and
the Cameras page (the operator's network cameras: state, rates, who is in view, the latest events
with their faces; it refreshes itself every few seconds, without any script).

The page's script (``static/live.js``) sends camera frames straight to the API's WebSocket: the
site (a WSGI app) cannot carry a WebSocket, and a relay would add a hop to every frame. The site
hands the page what it needs to connect and nothing more: the socket's URL (``WEB_LIVE_URL``,
default the API's URL with ``ws://``) and, where the API requires a read key, a ticket valid for
a minute (``GET /live/ticket`` asks the API for one with the site's key; the key itself never
reaches the browser). The page's policy is the site's own plus ``connect-src`` for that socket.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for

from face_client import ApiError, Upload

from .consent import ConsentNoteError, consent_record
from .context import face_api, web_settings
from .headers import CONTENT_SECURITY_POLICY
from .quality_gate import quality_refusal
from .videos import proxy

CAMERAS_REFRESH_S = 5
EVENT_WORDS = {"appeared": "appeared", "named": "was named", "renamed": "was renamed", "left": "left"}

bp = Blueprint("live", __name__)


def live_socket_url() -> str:
    """Where the browser reaches the API's /live WebSocket."""
    settings = web_settings()
    if settings.live_url:
        return settings.live_url
    parts = urlsplit(settings.api_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/live"


def _policy(socket_url: str) -> str:
    """The site's policy, allowing scripts to connect to this site and to the live socket only."""
    parts = urlsplit(socket_url)
    return f"{CONTENT_SECURITY_POLICY}; connect-src 'self' {parts.scheme}://{parts.netloc}"


@bp.get("/live")
def page() -> Response:
    html = render_template("live.html", ticket_url=url_for("live.ticket"))
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = _policy(live_socket_url())
    return response


@bp.get("/live/ticket")
def ticket():
    """What the page's script needs to open the socket: its URL, subprotocol and a fresh ticket."""
    try:
        answer = face_api().live_ticket()
    except ApiError as exc:
        return jsonify(detail=exc.message), exc.status if exc.status >= 500 else 502
    response = jsonify(url=live_socket_url(), protocol=answer.get("protocol"), ticket=answer.get("ticket"))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/cameras")
def cameras():
    try:
        listed, events = face_api().cameras(), face_api().events(limit=20)
    except ApiError as exc:
        return render_template("cameras.html", cameras=[], events=[], error=exc.message), exc.status
    for event in events:
        event["words"] = EVENT_WORDS.get(str(event.get("type")), event.get("type"))
        event["at_text"] = str(event.get("at") or "").replace("T", " ").rstrip("Z")[:19]
    return render_template("cameras.html", cameras=listed, events=events, refresh_s=CAMERAS_REFRESH_S)


@bp.get("/cameras/events/<int:event_id>/face.jpg")
def event_face(event_id: int):
    if event_id < 1:
        abort(404)
    return proxy(f"/events/{event_id}/face")


def _event_face(event_id: int) -> bytes:
    try:
        upstream = face_api().stream(f"/events/{event_id}/face")
    except ApiError as exc:
        abort(exc.status if exc.status == 404 else 502, description=exc.message)
    try:
        return upstream.content[: 2 * 1024 * 1024]
    finally:
        upstream.close()


@bp.get("/cameras/events/<int:event_id>/name")
def name_event_form(event_id: int):
    """Name an unknown person from their event's face: a page of its own, so that the Cameras
    page's refresh cannot interrupt the typing."""
    _event_face(event_id)  # 404 for an event without a face
    return render_template("name_event.html", event_id=event_id)


@bp.post("/cameras/events/<int:event_id>/name")
def name_event(event_id: int):
    name = (request.form.get("name") or "").strip()
    if not name or request.form.get("consent") != "yes":
        error = "Type a name and tick that this person agreed to be enrolled."
        return render_template("name_event.html", event_id=event_id, name=name, error=error), 400
    try:
        consent = consent_record(request.form.get("note", ""), "Cameras")
    except ConsentNoteError as exc:
        return render_template("name_event.html", event_id=event_id, name=name, error=str(exc)), 400
    face = _event_face(event_id)
    force = request.form.get("force") == "yes"
    try:
        face_api().enroll(name, [Upload(f"event-{event_id}.jpg", face, "image/jpeg")], consent=consent, force=force)
    except ApiError as exc:
        refusal = None if force else quality_refusal(exc)
        message = refusal or (f"The face was not enrolled: {exc.detail}" if exc.detail else exc.message)
        page = render_template(
            "name_event.html", event_id=event_id, name=name, error=message, offer_force=refusal is not None
        )
        return page, exc.status
    flash(f"Enrolled this face as {name}; the cameras will name them from now on.", "ok")
    return redirect(url_for("live.cameras"), code=303)
