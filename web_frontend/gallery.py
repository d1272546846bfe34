"""Enroll (a name, photos, the consent box) and the Gallery (identities, delete with a confirmation)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from face_client import ApiError

from .consent import ConsentNoteError, consent_record
from .context import face_api, web_settings
from .forms import FormError, read_uploads
from .quality_gate import quality_refusal

bp = Blueprint("gallery", __name__)

MAX_ENROLL_PHOTOS = 20
NAME_RULE = "Names may hold letters, digits, spaces and _ - . ' (1 to 64 characters), and may not be . or .."


# --- Enroll ---------------------------------------------------------------------------------
@bp.get("/enroll")
def enroll_form():
    return render_template("enroll.html", name="")


@bp.post("/enroll")
def enroll():
    name = request.form.get("name", "").strip()
    try:
        if not name:
            raise FormError("Enter the person's name.")
        if "/" in name or "\\" in name or name in (".", ".."):
            # The API refuses these too (422), but a slash would not even reach its route.
            raise FormError(NAME_RULE)
        if request.form.get("consent") != "yes":
            raise FormError("Tick the box to confirm that this person agreed to be enrolled.")
        consent = consent_record(request.form.get("consent_note", ""), "Enroll")
        uploads = read_uploads(request.files.getlist("photos"), web_settings())
        if not uploads:
            raise FormError("Choose at least one photo of the person.")
        if len(uploads) > MAX_ENROLL_PHOTOS:
            raise FormError(f"Choose at most {MAX_ENROLL_PHOTOS} photos at a time.")
    except (FormError, ConsentNoteError) as exc:
        return render_template("enroll.html", name=name, error=str(exc)), 400
    force = request.form.get("force") == "yes"
    try:
        result = face_api().enroll(name, uploads, consent=consent, force=force)
    except ApiError as exc:
        # A face below the enrollment quality gate may be enrolled deliberately: the page offers
        # the override next to the reason, never by default.
        refusal = None if force else quality_refusal(exc)
        error = refusal or exc.message
        return render_template("enroll.html", name=name, error=error, offer_force=refusal is not None), exc.status
    added = len(result.get("added") or [])
    return render_template(
        "enroll.html",
        name="",
        enrolled={"name": result.get("identity", name), "added": added, "total": result.get("faces")},
    )


# --- Gallery --------------------------------------------------------------------------------
@bp.get("/gallery")
def index():
    try:
        identities = sorted(face_api().identities(), key=lambda item: str(item.get("name", "")).lower())
    except ApiError as exc:
        return render_template("gallery.html", identities=None, error=exc.message), exc.status
    return render_template("gallery.html", identities=identities)


@bp.get("/gallery/delete")
def confirm_delete():
    name = request.args.get("name", "")
    if not name:
        return redirect(url_for("gallery.index"))
    return render_template("confirm_delete.html", name=name)


@bp.post("/gallery/delete")
def delete():
    name = request.form.get("name", "")
    if not name:
        return redirect(url_for("gallery.index"))
    if request.form.get("confirm") != "yes":
        return render_template("confirm_delete.html", name=name, error="Tick the box to confirm the deletion."), 400
    try:
        face_api().delete_identity(name)
    except ApiError as exc:
        if exc.status == 404:
            flash(f"{name} is not in the gallery (already deleted?).", "error")
            return redirect(url_for("gallery.index"))
        return render_template("confirm_delete.html", name=name, error=exc.message), exc.status
    flash(f"Deleted {name} and all of their faces.", "ok")
    return redirect(url_for("gallery.index"))
