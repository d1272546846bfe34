"""Putting a person's faces right: rename them, merge them into another person, move one face.

Linked from a person's page. A rename changes no face and can be undone by renaming back, so it is
a plain form. A merge removes a person (its faces join the other, which cannot be split back at one
click), so its page asks for a tick, as deleting does; moving a face asks for one only when it is
the person's last face (the person leaves the gallery with it). Both choosers list the identities
the gallery report finds most similar first (:mod:`.choosers`). When the API refuses, the page
says why in words: a name that is taken (409) leads to the merge page with that person chosen, a
person or face that is gone (404) or a refused name (422) is shown as the API's reason.
"""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from face_client import ApiError

from .choosers import similar_first
from .consent import ConsentNoteError, consent_record
from .context import face_api

bp = Blueprint("curation", __name__)


def gone(exc: ApiError, what: str) -> str:
    """The 404 of a curation call in words: someone else may have changed the gallery meanwhile."""
    return f"{what} is no longer in the gallery (renamed, merged or deleted meanwhile?): {exc.detail or exc.message}"


def _person_faces(name: str) -> list[dict[str, Any]]:
    try:
        return list(cast(dict[str, Any], face_api().identity(name)).get("faces") or [])
    except ApiError as exc:
        abort(404 if exc.status == 404 else exc.status, description=exc.message)


# --- rename -----------------------------------------------------------------------------------
@bp.post("/gallery/person/rename")
def rename():
    name = request.form.get("name", "")
    new_name = request.form.get("new_name", "").strip()
    if not name:
        return redirect(url_for("gallery.index"), code=303)
    if not new_name or new_name == name:
        flash("Type the new name first.", "error")
        return redirect(url_for("people.person", name=name), code=303)
    try:
        result = face_api().rename_identity(name, new_name)
    except ApiError as exc:
        if exc.status == 409:
            flash(f"{new_name} is already in the gallery. If they are one person, merge {name} into them.", "error")
            return redirect(url_for("curation.merge_form", name=name, into=new_name), code=303)
        if exc.status == 404:
            flash(gone(exc, name), "error")
            return redirect(url_for("gallery.index"), code=303)
        flash(exc.message, "error")
        return redirect(url_for("people.person", name=name), code=303)
    flash(f"Renamed {name} to {result['name']}.", "ok")
    return redirect(url_for("people.person", name=result["name"]), code=303)


# --- merge ------------------------------------------------------------------------------------
def _merge_page(name: str, into: str, error: str | None = None, status: int = 200):
    faces = _person_faces(name)
    choices, ordered = similar_first(name, face_api())
    page = render_template(
        "merge.html", name=name, into=into, faces=len(faces), choices=choices, ordered=ordered, error=error
    )
    return page, status


@bp.get("/gallery/person/merge")
def merge_form():
    name = request.args.get("name", "")
    if not name:
        return redirect(url_for("gallery.index"))
    return _merge_page(name, request.args.get("into", ""))


@bp.post("/gallery/person/merge")
def merge():
    name, into = request.form.get("name", ""), request.form.get("into", "")
    back = request.form.get("next") == "report"
    if not name:
        return redirect(url_for("gallery.index"), code=303)
    if not into:
        return _merge_page(name, into, "Choose the person to merge into.", 400)
    if request.form.get("confirm") != "yes":
        return _merge_page(name, into, f"Tick the box to confirm merging {name} into {into}.", 400)
    try:
        result = face_api().merge_identity(name, into)
    except ApiError as exc:
        if exc.status == 404:
            flash(gone(exc, f"{name} or {into}"), "error")
            return redirect(url_for("report.index" if back else "gallery.index"), code=303)
        if back:
            flash(exc.message, "error")
            return redirect(url_for("report.index"), code=303)
        return _merge_page(name, into, exc.message, exc.status)
    moved = len(result.get("moved") or [])
    flash(
        f"Merged {name} into {result['name']}: {moved} face{'' if moved == 1 else 's'} moved, {result['faces']} in all.",
        "ok",
    )
    if back:
        return redirect(url_for("report.index"), code=303)
    return redirect(url_for("people.person", name=result["name"]), code=303)


# --- move a face ------------------------------------------------------------------------------
def _move_page(name: str, face_id: str, error: str | None = None, status: int = 200, **form: str):
    faces = _person_faces(name)
    face = next((f for f in faces if f.get("face_id") == face_id), None)
    if face is None:
        abort(404, description=f"{name} has no face {face_id}.")
    choices, ordered = similar_first(name, face_api())
    page = render_template(
        "move_face.html",
        name=name,
        face=face,
        last=len(faces) == 1,
        choices=choices,
        ordered=ordered,
        error=error,
        form=form,
    )
    return page, status


@bp.get("/gallery/person/face/move")
def move_form():
    name, face_id = request.args.get("name", ""), request.args.get("face_id", "")
    if not name or not face_id:
        return redirect(url_for("gallery.index"))
    return _move_page(name, face_id)


@bp.post("/gallery/person/face/move")
def move():
    form = {k: request.form.get(k, "") for k in ("name", "face_id", "to", "new_name", "consent_note")}
    name, face_id = form.pop("name"), form.pop("face_id")
    if not name or not face_id:
        return redirect(url_for("gallery.index"), code=303)
    new_name = form["new_name"].strip()
    to = new_name or form["to"]
    consent = None
    try:
        if not to:
            raise ValueError("Choose the person the face belongs to, or type a new person's name.")
        if new_name and request.form.get("consent") != "yes":
            raise ValueError(f"Tick the box to confirm that {new_name} agreed to be enrolled.")
        if new_name:
            consent = consent_record(form["consent_note"], "Move a face")
        if request.form.get("confirm") != "yes" and len(_person_faces(name)) == 1:
            raise ValueError(f"Tick the box to confirm: this is {name}'s only face, and {name} leaves the gallery.")
    except (ValueError, ConsentNoteError) as exc:
        return _move_page(name, face_id, str(exc), 400, **form)
    try:
        result = face_api().move_face(name, face_id, to, consent=consent)
    except ApiError as exc:
        if exc.status == 404:
            flash(gone(exc, f"The face {face_id} of {name}"), "error")
            return redirect(url_for("people.person", name=name), code=303)
        return _move_page(name, face_id, exc.message, exc.status, **form)
    flash(f"Moved the face {face_id} of {name} to {result['name']} ({result['faces']} faces now).", "ok")
    try:
        face_api().identity(name)
    except ApiError:  # it was the last face: the person went with it
        flash(f"{name} had no other face and is no longer in the gallery.", "ok")
        return redirect(url_for("people.person", name=result["name"]), code=303)
    return redirect(url_for("people.person", name=name), code=303)
