"""Curating the gallery: rename an identity, merge it into another, move a face to another person,
and the gallery's report of what may need it.

Each is one transaction of the store, audited with the acting key's label and carried to every
PostgreSQL replica; each needs the write key. A name another identity has is a 409 naming it,
unless a rename asks to merge.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response

from ..gallery import curation, validate_name
from ..gallery.audit import acting
from ..gallery.errors import IdentityExistsError, IdentityNotFoundError
from ..gallery.names import name_key
from ..gallery.report import gallery_report
from .app_state import Services
from .audit import enrollment_context, write_context
from .deps import ServicesDep
from .identities import NamePath
from .schemas import (
    CurationResult,
    DismissRequest,
    GalleryReport,
    MergeRequest,
    MoveRequest,
    RenameRequest,
    error_responses,
)
from .security import require_api_key, require_read_key

router = APIRouter(tags=["identities"])

FaceIdPath = Path(description="Id of an enrolled face.", max_length=64)
ERRORS = error_responses(400, 401, 404, 409, 422, 503, 507)  # 400: a body that is not JSON


def _result(services: Services, name: str, moved: list[str]) -> dict:
    return {"name": name, "faces": len(services.gallery.faces_of(name) or []), "moved": moved}


def _not_found(exc: IdentityNotFoundError) -> HTTPException:
    if exc.face_id is not None:
        return HTTPException(404, f"identity {exc.name!r} has no face {exc.face_id}")
    return HTTPException(404, f"no identity named {exc.name!r}")


def _exists(exc: IdentityExistsError) -> HTTPException:
    return HTTPException(409, f"identity {exc.name!r} exists: rename with merge=true, or merge into it")


# Plain ``def``: FastAPI runs these in its thread pool, away from the event loop.
@router.patch(
    "/identities/{name}",
    response_model=CurationResult,
    responses=ERRORS,
    dependencies=[Depends(require_api_key)],
    summary="Rename an identity (or, with merge=true, merge it into the identity that has the name)",
)
def rename_identity(
    services: ServicesDep,
    request: Request,
    body: RenameRequest,
    name: str = NamePath,
) -> dict:
    name, new_name = validate_name(name), validate_name(body.name)
    with acting(write_context(request, services)):
        try:
            shown = curation.rename(services.gallery, name, new_name)
            request.app.state.videos.follow_identity(name, shown)
            request.app.state.events.follow_identity(name, shown)
            return _result(services, shown, [r.face_id for r in services.gallery.faces_of(shown) or []])
        except IdentityExistsError as exc:
            if not body.merge:
                raise _exists(exc) from None
        except IdentityNotFoundError as exc:
            raise _not_found(exc) from None
        return _merge(request, services, name, new_name)


@router.post(
    "/identities/{name}/merge",
    response_model=CurationResult,
    responses=ERRORS,
    dependencies=[Depends(require_api_key)],
    summary="Move every face of an identity into another and remove it (histories and consents kept)",
)
def merge_identity(
    services: ServicesDep,
    request: Request,
    body: MergeRequest,
    name: str = NamePath,
) -> dict:
    name, into = validate_name(name), validate_name(body.into)
    if name_key(name) == name_key(into):
        raise HTTPException(422, "an identity cannot be merged into itself")
    with acting(write_context(request, services)):
        return _merge(request, services, name, into)


def _merge(request: Request, services: Services, name: str, into: str) -> dict:
    """Merge ``name`` into ``into`` (PATCH with merge=true and POST .../merge alike); the video
    track records and live events follow the faces to the identity they ended in."""
    try:
        target, moved = curation.merge(services.gallery, name, into)
    except IdentityNotFoundError as exc:
        raise _not_found(exc) from None
    request.app.state.videos.follow_identity(name, target)
    request.app.state.events.follow_identity(name, target)
    return _result(services, target, moved)


@router.post(
    "/identities/{name}/faces/{face_id}/move",
    response_model=CurationResult,
    responses=ERRORS,
    dependencies=[Depends(require_api_key)],
    summary="Move one face to another identity (created when new); an identity left empty is removed",
)
def move_face(
    services: ServicesDep,
    request: Request,
    body: MoveRequest,
    name: str = NamePath,
    face_id: str = FaceIdPath,
) -> dict:
    name, to = validate_name(name), validate_name(body.to)
    if name_key(name) == name_key(to):
        raise HTTPException(422, "the face is in that identity already")
    if services.gallery.faces_of(to) is None:  # a new identity: its consent and expiry as for enrollment
        context = enrollment_context(request, services, body.consent, body.expires_at)
    else:
        context = write_context(request, services)
    with acting(context):
        try:
            target = curation.move_face(services.gallery, name, face_id, to)
        except IdentityNotFoundError as exc:
            raise _not_found(exc) from None
    if services.gallery.faces_of(name) is None:  # its last face: the tracks enrolled as it go along
        request.app.state.videos.follow_identity(name, target)
        request.app.state.events.follow_identity(name, target)
    return _result(services, target, [face_id])


@router.get(
    "/gallery/report",
    response_model=GalleryReport,
    responses=error_responses(401, 422, 503),
    dependencies=[Depends(require_read_key)],
    summary="The gallery's likely mistakes: identities that may be one person, faces that may not be theirs",
)
def report(
    services: ServicesDep,
    limit: int = Query(100, ge=1, le=1000, description="At most this many pairs and this many flagged faces."),
) -> dict:
    """Read from the store (every replica answers the same), measured with the service's
    recognition threshold: pairs of identities whose templates are at least that similar, best
    first; faces whose agreement with the rest of their identity is below it, worst first."""
    store = services.gallery.store
    table = store.load_table(services.gallery.dim)
    return gallery_report(table, services.engine.threshold, limit, store.dismissed_pairs()).as_json()


@router.post(
    "/gallery/report/dismissed",
    status_code=204,
    response_class=Response,
    responses=error_responses(400, 401, 404, 422, 503, 507),
    dependencies=[Depends(require_api_key)],
    summary="Say two identities are not the same person: the report stops suggesting the pair",
)
def dismiss_pair(services: ServicesDep, request: Request, body: DismissRequest) -> Response:
    a, b = validate_name(body.a), validate_name(body.b)
    if name_key(a) == name_key(b):
        raise HTTPException(422, "a and b name the same identity")
    with acting(write_context(request, services)):
        try:
            services.gallery.store.dismiss_pair(a, b)
        except IdentityNotFoundError as exc:
            raise _not_found(exc) from None
    return Response(status_code=204)
