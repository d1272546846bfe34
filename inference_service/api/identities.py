"""Enrollment and the gallery's identities: add faces, list, show, delete.

Writes (enroll, delete) need the API key when one is configured. Deletion is for good: the
store overwrites deleted rows and folds its write-ahead log, so no copy stays in the file.
"""

from __future__ import annotations

import math
import re

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Request, Response, UploadFile

from ..analysis import photos
from ..gallery import GalleryError, validate_name
from ..gallery.audit import CONSENT_MAX_LENGTH, acting
from ..gallery.names import MAX_NAME_LENGTH, NAME_RULE, identity_key
from ..gallery.report import face_agreements
from .audit import enrollment_context, write_context
from .deps import ServicesDep
from .schemas import EnrollResponse, IdentityDetail, IdentityExport, IdentityList, error_responses
from .security import require_api_key, require_read_key
from .uploads import read_upload, upload_label

router = APIRouter(prefix="/identities", tags=["identities"])

NAME_DOC = (
    f"{NAME_RULE[0].upper()}{NAME_RULE[1:]}. Stored in Unicode NFC; two names that differ only in "
    "case are one identity."
)
# For the OpenAPI spec only (clients, generators, schemathesis); ``validate_name`` stays the
# check, because a regex cannot say "Unicode letter" in every dialect that reads the spec.
# So the pattern is what the rule says as far as a portable regex can: the ASCII and Latin-1
# characters outside the rule and whole blocks with no letter or digit (general punctuation,
# currency, arrows to symbols, surrogates, private use, specials) are excluded, the first and
# last characters are not spaces, and at least one character is neither space nor _ - . '.
# Everything validate_name accepts matches it (tests/integration/test_api_contract.py checks every BMP
# character); the few it lets through that validate_name refuses (a lone combining mark, ...)
# answer 422.
_NOT_IN_NAMES = (
    r"\x00-\x1f!-&(-,/:-@\[-^`{-\xa9\xab-\xb4\xb6-\xb9\xbb-\xbf\xd7\xf7"
    r"\u2000-\u206f\u20a0-\u20cf\u2190-\u2bff\ud800-\udfff\ue000-\uf8ff\ufff0-\uffff"
)
_PUNCTUATION = r"_.'\-"
NAME_PATTERN = (
    rf"^(?:[{_PUNCTUATION}][{_PUNCTUATION} ]*)?[^{_NOT_IN_NAMES}{_PUNCTUATION} ]"
    rf"(?:[^{_NOT_IN_NAMES}]*[^{_NOT_IN_NAMES} ])?$"
)
NamePath = Path(
    description=NAME_DOC,
    json_schema_extra={"pattern": NAME_PATTERN, "minLength": 1, "maxLength": MAX_NAME_LENGTH},
)


# One face box per image: "x1,y1,x2,y2" in the image's pixels (as /detect answers them), or empty
# for "the largest face". Plain decimals only: no exponents, inf or nan to reason about.
_NUMBER = r" *[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+) *"
BOX_PATTERN = rf"^(?:{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER})?$"
BOX_MAX_LENGTH = 120
BOX_DOC = (
    "Optional, one per image in the order of the images: the face to enroll as x1,y1,x2,y2 in that "
    "image's pixels (as /detect gives them). The detected face overlapping it best, with IoU at "
    f"least {photos.MIN_BOX_IOU}, is enrolled, else 422 naming the image. Fewer boxes than images: "
    "the boxes apply to the first images and the others give their largest face; an empty box "
    "means the largest face too. More boxes than images is a 422."
)
BoxForm = Form(
    default_factory=list,
    description=BOX_DOC,
    json_schema_extra={"items": {"type": "string", "pattern": BOX_PATTERN, "maxLength": BOX_MAX_LENGTH}},
)


def parse_boxes(values: list[str], images: int) -> list[photos.Box | None]:
    """The ``box`` fields as boxes (None for an empty one); 422 for a malformed one or too many."""
    if len(values) > images:
        raise HTTPException(422, f"{len(values)} boxes for {images} image(s): send at most one box per image")
    boxes: list[photos.Box | None] = []
    for number, text in enumerate(values, start=1):
        where = f"box {number} of {len(values)}"
        if len(text) > BOX_MAX_LENGTH or not re.fullmatch(BOX_PATTERN, text):
            raise HTTPException(422, f"{where} must be x1,y1,x2,y2 in pixels (e.g. 120,80,220,210), got {text[:40]!r}")
        if not text.strip():
            boxes.append(None)
            continue
        x1, y1, x2, y2 = (float(v) for v in text.split(","))
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
            raise HTTPException(422, f"{where} ({text}) is empty: x2 must exceed x1 and y2 exceed y1")
        boxes.append((x1, y1, x2, y2))
    return boxes


def _not_found(name: str) -> HTTPException:
    return HTTPException(404, f"no identity named {name!r}")


@router.post(
    "/{name}/faces",
    status_code=201,
    response_model=EnrollResponse,
    responses=error_responses(400, 401, 408, 413, 415, 422, 503, 507),
    dependencies=[Depends(require_api_key)],
    summary="Enroll one face of each uploaded photo (the boxed one, else the largest) under a name",
)
async def enroll(
    services: ServicesDep,
    request: Request,
    name: str = NamePath,
    image: list[UploadFile] = File(
        description="One or more photos of this person; every one must show a face, or nothing is stored."
    ),
    box: list[str] = BoxForm,
    consent: str | None = Form(
        None,
        max_length=4 * CONSENT_MAX_LENGTH,
        description=(
            f"The person's consent: a statement or reference (e.g. 'signed form 2026-03-14'), at most "
            f"{CONSENT_MAX_LENGTH} characters, stored with the identity with the time and the key's label. "
            "Required when the service runs with FACE_REQUIRE_CONSENT=true."
        ),
    ),
    expires_at: str | None = Form(
        None,
        max_length=64,
        description=(
            "When to erase this identity, ISO 8601 with a UTC offset; default FACE_RETENTION_DAYS from "
            "this enrollment (none when unset)."
        ),
    ),
    force: bool = Form(
        False,
        description=(
            "Enroll faces that fail the quality gate (narrower than 40 px, too dark or too blurred, "
            "README 'Enrollment quality gate'); without it such a photo is refused with 422 saying why."
        ),
    ),
) -> dict:
    name = validate_name(name)
    boxes = parse_boxes(box, len(image))
    context = enrollment_context(request, services, consent, expires_at)
    uploads = [(upload_label(f, "image", i, len(image)), await read_upload(f)) for i, f in enumerate(image)]
    return await services.pool.run(
        _acting,
        context,
        photos.enroll,
        services.engine,
        services.gallery,
        name,
        uploads,
        services.pixel_limits,
        boxes,
        force,
    )


def _acting(context, job, *args):
    """``job(*args)`` on a worker thread under ``context`` (context variables do not cross threads)."""
    with acting(context):
        return job(*args)


@router.get(
    "",
    response_model=IdentityList,
    response_model_exclude_none=True,  # consent and expiry appear where recorded
    responses=error_responses(401),
    dependencies=[Depends(require_read_key)],
    summary="List enrolled identities",
)
def list_identities(services: ServicesDep) -> dict:
    try:
        terms = services.gallery.store.all_terms()
    except GalleryError:  # the store unreachable: the listing goes on from memory, without them
        terms = {}
    listed = []
    for name, count in services.gallery.identities():
        found = terms.get(identity_key(name))
        item = {"name": name, "faces": count}
        if found is not None:
            item.update(consent=found.consent_json(), expires_at=found.expires_at)
        listed.append(item)
    return {"identities": listed}


@router.get(
    "/{name}",
    response_model=IdentityDetail,
    responses=error_responses(401, 404, 422),
    dependencies=[Depends(require_read_key)],
    summary="An identity's enrolled faces",
)
async def show_identity(services: ServicesDep, name: str = NamePath) -> dict:
    name = validate_name(name)
    records = services.gallery.faces_of(name)
    if records is None:
        raise _not_found(name)
    terms = services.gallery.store.identity_terms(name)
    agreement = face_agreements(records, services.engine.threshold)
    return {
        "consent": None if terms is None else terms.consent_json(),
        "expires_at": None if terms is None else terms.expires_at,
        "name": records[0].identity,  # the first spelling enrolled, whatever case was asked for
        "faces": [
            {
                "face_id": r.face_id,
                "created_at": r.created_at,
                "box": None if r.box is None else [round(float(v), 2) for v in r.box],
                "agreement": None if agree is None else round(agree, 4),
                "flagged": flagged,
            }
            for r, (agree, flagged) in zip(records, agreement)
        ],
    }


# Plain ``def``: FastAPI runs these in its thread pool, so the SQLite write and WAL checkpoint
# never block the event loop.
@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 404, 422, 503, 507),
    dependencies=[Depends(require_api_key)],
    summary="Erase an identity and all its faces for good",
)
def delete_identity(services: ServicesDep, request: Request, name: str = NamePath) -> Response:
    name = validate_name(name)
    with acting(write_context(request, services)):
        if not services.gallery.delete_identity(name):
            raise _not_found(name)
    # Every copy: the faces video jobs kept for tracks enrolled under the name (the sweeper
    # finishes this if the process stops here, see videos/runner.py).
    request.app.state.videos.erase_identity(name)
    request.app.state.events.erase_identity(name)  # the person's camera events and their faces too
    return Response(status_code=204)


@router.get(
    "/{name}/export",
    response_model=IdentityExport,
    responses=error_responses(401, 404, 422, 503),
    dependencies=[Depends(require_api_key)],
    summary="Everything stored about one person, as one JSON document (an access request)",
)
def export_identity(services: ServicesDep, request: Request, name: str = NamePath) -> dict:
    """Read from the database itself (not this process's memory) in one transaction that also
    records the export in the audit trail, so the document is what the database holds."""
    name = validate_name(name)
    document = services.gallery.store.export_identity(name, write_context(request, services))
    if document is None:
        raise _not_found(name)
    tracks = request.app.state.videos.store.enrollments_of(identity_key(name))
    live_events = request.app.state.events.of_identity(name)  # camera events naming them
    return {**document, "video_tracks": [t.as_json() for t in tracks], "live_events": live_events}


@router.delete(
    "/{name}/faces/{face_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 404, 422, 503, 507),
    dependencies=[Depends(require_api_key)],
    summary="Erase one enrolled face (the identity goes with its last face)",
)
def delete_face(
    services: ServicesDep,
    request: Request,
    name: str = NamePath,
    face_id: str = Path(description="The face_id returned at enrollment or by GET /identities/{name}."),
) -> Response:
    name = validate_name(name)
    with acting(write_context(request, services)):
        if not services.gallery.delete_face(name, face_id):
            raise HTTPException(404, f"identity {name!r} has no face {face_id!r}")
    if services.gallery.faces_of(name) is None:  # that was the last face: the person is erased
        request.app.state.videos.erase_identity(name)
        request.app.state.events.erase_identity(name)
    return Response(status_code=204)


@router.get(
    "/{name}/faces/{face_id}/thumbnail",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The face's crop"},
        **error_responses(401, 404, 422),
    },
    dependencies=[Depends(require_read_key)],
    summary="The small JPEG crop of a face kept at enrollment",
)
def face_thumbnail(
    services: ServicesDep,
    name: str = NamePath,
    face_id: str = Path(description="The face_id returned at enrollment or by GET /identities/{name}."),
) -> Response:
    """Plain ``def``: the store read runs in FastAPI's thread pool. Faces enrolled before
    thumbnails were kept (or through a path that had no image) answer 404."""
    name = validate_name(name)
    jpeg = services.gallery.thumbnail(name, face_id)
    if jpeg is None:
        raise HTTPException(404, f"identity {name!r} has no face {face_id!r} with a thumbnail")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
