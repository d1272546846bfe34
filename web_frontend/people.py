"""A page per enrolled person: their faces (when, from what box), removing one face or the person.

The page also links the curation forms (:mod:`.curation`: rename, merge, move a face) and marks a
face the API flags as unlike the rest of the person ("may not be this person").

Linked from the Gallery. Removing a face asks first (a page with a confirmation box, as deleting a
person does): it cannot be undone. Like every page showing a person it needs the login when
``WEB_PASSWORD`` is set, and every form carries the CSRF token. Each face shows the small crop the
API kept at enrollment, through :mod:`.thumbnails` (none for faces enrolled before it kept them).
"""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from face_client import ApiError

from .context import face_api

bp = Blueprint("people", __name__)


@bp.get("/gallery/person")
def person():
    name = request.args.get("name", "")
    if not name:
        return redirect(url_for("gallery.index"))
    try:
        detail = cast(dict[str, Any], face_api().identity(name))
    except ApiError as exc:
        if exc.status == 404:
            abort(404, description=f"{name} is not in the gallery.")
        return render_template("person.html", name=name, faces=None, error=exc.message), exc.status
    faces = _face_rows(detail)
    return render_template(
        "person.html",
        name=detail.get("name", name),
        faces=faces,
        consent=detail.get("consent"),
        expires_at=(detail.get("expires_at") or "").replace("T", " ")[:16],
    )


def _face_rows(detail: dict[str, Any]) -> list[dict[str, Any]]:
    """What the page shows of each face; ``agreement``/``flagged`` are None from an API that does not
    judge its faces."""
    return [
        {
            "face_id": f.get("face_id", ""),
            "created_at": (f.get("created_at") or "").replace("T", " ")[:19],
            "box": ", ".join(f"{v:.0f}" for v in f.get("box") or []) or "–",
            "agreement": f.get("agreement"),
            "flagged": bool(f.get("flagged")),
        }
        for f in detail.get("faces") or []
    ]


@bp.get("/gallery/person/face/delete")
def confirm_delete_face():
    name = request.args.get("name", "")
    face_id = request.args.get("face_id", "")
    if not name or not face_id:
        return redirect(url_for("gallery.index"))
    try:
        faces = _face_rows(cast(dict[str, Any], face_api().identity(name)))
    except ApiError as exc:
        abort(404 if exc.status == 404 else 502, description=exc.message)
    face = next((f for f in faces if f["face_id"] == face_id), None)
    if face is None:
        abort(404, description=f"{name} has no face {face_id}.")
    return render_template("confirm_delete_face.html", name=name, face=face, last=len(faces) == 1)


@bp.post("/gallery/person/face/delete")
def delete_face():
    name = request.form.get("name", "")
    face_id = request.form.get("face_id", "")
    if not name or not face_id:
        return redirect(url_for("gallery.index"))
    if request.form.get("confirm") != "yes":
        flash("Tick the box to confirm removing the face.", "error")
        return redirect(url_for("people.confirm_delete_face", name=name, face_id=face_id), code=303)
    try:
        face_api().delete_face(name, face_id)
    except ApiError as exc:
        flash(exc.message if exc.status != 404 else "That face was already removed.", "error")
    else:
        flash(f"Removed one face of {name}.", "ok")
    try:
        face_api().identity(name)
    except ApiError:  # the last face went, and the person with it
        flash(f"{name} had no other face and is no longer in the gallery.", "ok")
        return redirect(url_for("gallery.index"), code=303)
    return redirect(url_for("people.person", name=name), code=303)
