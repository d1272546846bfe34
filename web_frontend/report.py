"""The Gallery report: who may be the same person, which faces may not be their person's.

Both lists are the API's (``GET /gallery/report``), best first. Each pair has a one-click "Not the
same person", which the API remembers so the pair is not suggested again (nothing is removed, so it
asks nothing), and a merge form that needs a tick first, as every removal does: the identity with
fewer faces goes into the other, or "the other way" opens the merge page with the choice reversed.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from face_client import ApiError

from .context import face_api
from .curation import gone

bp = Blueprint("report", __name__)

NO_ROUTE = "Not Found"  # the API's 404 for a path it does not have (a missing person has a detail naming them)


@bp.get("/gallery/report")
def index():
    api = face_api()
    try:
        report = api.gallery_report()
        counts = {str(i.get("name", "")): int(i.get("faces", 0)) for i in api.identities()}
    except ApiError as exc:
        if exc.api_status == 404:
            message = "The face service does not make a gallery report (it is older than this site)."
        else:
            message = exc.message
        return render_template("report.html", pairs=None, flagged=None, error=message), exc.status
    pairs = []
    for pair in sorted(report.get("pairs") or [], key=lambda p: -float(p.get("similarity", 0.0))):
        a, b = str(pair.get("a", "")), str(pair.get("b", ""))
        # keep the name with more faces: fewer faces to move, and usually the name used more
        source, into = (a, b) if counts.get(a, 0) < counts.get(b, 0) else (b, a)
        pairs.append({"a": a, "b": b, "similarity": float(pair.get("similarity", 0.0)), "source": source, "into": into})
    flagged = sorted(report.get("flagged") or [], key=lambda f: float(f.get("agreement", 0.0)))
    return render_template("report.html", pairs=pairs, flagged=flagged, counts=counts)


@bp.post("/gallery/report/distinct")
def distinct():
    a, b = request.form.get("a", ""), request.form.get("b", "")
    if not a or not b:
        return redirect(url_for("report.index"), code=303)
    try:
        face_api().dismiss_pair(a, b)
    except ApiError as exc:
        if exc.api_status == 404 and exc.detail == NO_ROUTE:
            flash("The face service cannot remember that two people differ (it is older than this site).", "error")
        else:
            flash(gone(exc, f"{a} or {b}") if exc.status == 404 else exc.message, "error")
    else:
        flash(f"Noted: {a} and {b} are not the same person; the report will not suggest them again.", "ok")
    return redirect(url_for("report.index"), code=303)
