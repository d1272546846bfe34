""" "Name this face" on the result page: enroll exactly one face of a recognised photo.

The site keeps no upload, so each face's form carries the face itself: its crop (a small JPEG,
:mod:`web_frontend.face_crops`) and a token signed with the site's secret key (itsdangerous, as
Flask's session cookie is) that holds the crop's SHA-256 and the face's box within it. A form
whose crop or box was swapped, or that is older than :data:`TOKEN_MAX_AGE_S`, is refused; a valid
one is sent to the API's ``POST /identities/{name}/faces`` with that box, so the API enrolls the
face the person saw, not the largest one of the crop. Each form names its face once: its token also
holds a random form id that the site keeps (:class:`web_frontend.issued_ids.IssuedIds`) and uses up
on the first enrollment, so a replay of the same crop and token is refused (409), under any name. Like Enroll it needs the consent box and,
when ``WEB_PASSWORD`` is set, a login; the CSRF check covers it as every POST.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from PIL import Image

from face_client import ApiError, Upload

from .consent import consent_record
from .context import face_api
from .face_crops import cut_faces
from .issued_ids import IdState, IssuedIds
from .quality_gate import quality_refusal

log = logging.getLogger(__name__)

bp = Blueprint("naming", __name__)
bp.record_once(lambda state: state.app.extensions.setdefault(FORMS, IssuedIds(MAX_OPEN_FORMS, TOKEN_MAX_AGE_S)))

_SALT = "name-this-face"
# A result page's forms stay usable this long: enough to ask the person, short enough that a
# saved page is not a standing permission.
TOKEN_MAX_AGE_S = 3600
# The crops are at most 320 px JPEGs (some tens of KB); a posted one larger than this was not
# made by this site, and is refused before it is decoded or hashed.
MAX_CROP_BYTES = 256 * 1024
# Forms open at once (a result page has at most 20): past it, the oldest forms go out of date.
MAX_OPEN_FORMS = 20_000
FORMS = "naming_forms"
ALREADY_NAMED = (
    "This face was already named with this form: a form enrolls its face once. "
    "To add another photo of the person, recognise a photo again."
)
STALE_FORM = "This face's form is out of date or was changed. Recognise the photo again and name the face there."


@dataclass(frozen=True)
class FaceForm:
    """What the template needs for one face's "Name this face" form."""

    number: int
    label: str
    crop_base64: str
    token: str
    width: int
    height: int
    box: str  # the face's box in the uploaded photo, for people and tests to tell faces apart

    @property
    def data_url(self) -> str:
        return f"data:image/jpeg;base64,{self.crop_base64}"


class _FormError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _open_forms() -> IssuedIds:
    return current_app.extensions[FORMS]


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(str(current_app.secret_key), salt=_SALT)


def face_forms(photo: bytes | Image.Image, faces: Sequence[dict[str, Any]], labels: Sequence[str]) -> list[FaceForm]:
    """A form per face of ``faces`` (the API's answer for ``photo``); none if it cannot be cut."""
    try:
        crops = cut_faces(photo, faces)
    except Exception:  # noqa: BLE001 - the result page is still worth showing without the forms
        log.exception("could not cut the faces out of the photo")
        return []
    serializer, open_forms = _serializer(), _open_forms()
    forms = []
    for number, (face, crop, label) in enumerate(zip(faces, crops, labels), start=1):
        if crop is None:
            continue
        signed = {"sha256": hashlib.sha256(crop.jpeg).hexdigest(), "box": crop.box_text, "form": open_forms.issue()}
        token = serializer.dumps(signed)
        box = ",".join(f"{float(v):.0f}" for v in face["box"])
        forms.append(FaceForm(number, label, crop.base64, token, crop.width, crop.height, box))
    return forms


def _signed_face() -> tuple[bytes, str, str, FaceForm]:
    """The posted crop, its box and its form id, once the token vouches for them; else a 400."""
    text = request.form.get("crop", "")
    token = request.form.get("token", "")
    if not text or not token or len(text) > MAX_CROP_BYTES * 4 // 3 + 4:
        raise _FormError(STALE_FORM)
    try:
        signed = _serializer().loads(token, max_age=TOKEN_MAX_AGE_S)
        crop = base64.b64decode(text, validate=True)
    except SignatureExpired:
        raise _FormError("This face's form is more than an hour old. Recognise the photo again.") from None
    except (BadSignature, binascii.Error, ValueError):
        raise _FormError(STALE_FORM) from None
    if (
        not isinstance(signed, dict)
        or not isinstance(signed.get("sha256"), str)
        or not isinstance(signed.get("box"), str)
        or not isinstance(signed.get("form"), str)
    ):
        raise _FormError(STALE_FORM)
    if not hmac.compare_digest(hashlib.sha256(crop).hexdigest(), signed["sha256"]):
        raise _FormError(STALE_FORM)
    number = request.form.get("number", "")
    form = FaceForm(int(number) if re.fullmatch(r"[0-9]{1,4}", number) else 0, "", text, token, 0, 0, "")
    return crop, signed["box"], signed["form"], form


@bp.get("/faces/name")
def name_face_form():
    """Reached only after a login interrupted a POST: the form went with it, so start over."""
    return redirect(url_for("recognize.home"))


@bp.post("/faces/name")
def name_face():
    name = request.form.get("name", "").strip()
    try:
        crop, box, form_id, form = _signed_face()
    except _FormError as exc:
        return render_template("error.html", code=exc.status, title="Name a face", message=exc.message), exc.status
    try:
        if not name:
            raise _FormError("Enter the person's name.")
        if "/" in name or "\\" in name or name in (".", ".."):
            raise _FormError(
                "Names may hold letters, digits, spaces and _ - . ' (1 to 64 characters), and may not be . or .."
            )
        if request.form.get("consent") != "yes":
            raise _FormError("Tick the box to confirm that this person agreed to be enrolled.")
        consent = consent_record("", "Name this face")
    except _FormError as exc:
        return render_template("name_face.html", face=form, name=name, error=exc.message), exc.status
    # Used up before the enrollment, in one step: of two posts of one form racing, one enrolls.
    state = _open_forms().use(form_id)
    if state is not IdState.OPEN:
        status, message = (409, ALREADY_NAMED) if state is IdState.USED else (400, STALE_FORM)
        return render_template("error.html", code=status, title="Name a face", message=message), status
    force = request.form.get("force") == "yes"
    try:
        result = face_api().enroll(
            name, [Upload("face.jpg", crop, "image/jpeg")], boxes=[box], consent=consent, force=force
        )
    except ApiError as exc:
        if 400 <= exc.status < 500:  # the API refused, nothing was enrolled: the form may be corrected and sent again
            _open_forms().reopen(form_id)
        refusal = None if force else quality_refusal(exc)
        page = render_template(
            "name_face.html", face=form, name=name, error=refusal or exc.message, offer_force=refusal is not None
        )
        return page, exc.status
    enrolled = {"name": result.get("identity", name), "total": result.get("faces")}
    return render_template("name_face.html", face=form, name="", enrolled=enrolled)
