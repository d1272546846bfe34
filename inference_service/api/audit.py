"""GET /audit, and what every route that writes tells the audit trail: who acted, and the
consent and expiry an enrollment carries."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from ..gallery import validate_name
from ..gallery.audit import CONSENT_MAX_LENGTH, Actor, AuditQuery, WriteContext, now_utc, visible_consent
from .app_state import Services
from .deps import ServicesDep
from .schemas import AuditPage, error_responses
from .security import require_api_key

router = APIRouter(tags=["audit"])

PAGE_MAX = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def actor(request: Request) -> Actor:
    """The key label ``require_api_key`` found, and the client's address."""
    return Actor(getattr(request.state, "key_label", None), request.client.host if request.client else None)


def write_context(request: Request, services: Services) -> WriteContext:
    return WriteContext(actor=actor(request), forget_names=services.settings.audit_forget_names)


def parse_time(text: str, field: str) -> datetime:
    """An ISO 8601 time with its offset; 422 naming ``field`` otherwise."""
    try:
        moment = datetime.fromisoformat(text.strip()) if len(text) <= 64 else None
    except ValueError:
        moment = None
    if moment is None:
        raise HTTPException(422, f"{field} must be an ISO 8601 time such as 2027-01-31T12:00:00+00:00")
    if moment.tzinfo is None:
        raise HTTPException(422, f"{field} needs a UTC offset (e.g. 2027-01-31T12:00:00Z), got {text[:40]!r}")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. year 1 with a positive offset: before the first UTC instant
        raise HTTPException(422, f"{field} is outside the years 1-9999 in UTC") from None


def enrollment_context(
    request: Request, services: Services, consent: str | None, expires_at: str | None
) -> WriteContext:
    """The consent record and expiry of one enrollment, checked; 422 says what is missing."""
    settings = services.settings
    consent = visible_consent(consent)  # only spaces or invisible characters: no consent given
    if consent is not None:
        if len(consent) > CONSENT_MAX_LENGTH:
            raise HTTPException(422, f"consent is {len(consent)} characters; at most {CONSENT_MAX_LENGTH} are kept")
        if _CONTROL.search(consent):
            raise HTTPException(422, "consent may not contain control characters (line breaks included)")
    elif settings.require_consent:
        raise HTTPException(
            422,
            "this service records consent for every enrollment (FACE_REQUIRE_CONSENT is set): send form field "
            f"consent with a statement or reference of at most {CONSENT_MAX_LENGTH} characters, e.g. "
            "'signed form 2026-03-14'",
        )
    expires = None
    if expires_at is not None and expires_at.strip():
        expires = parse_time(expires_at, "expires_at")
        if expires <= now_utc():
            raise HTTPException(422, "expires_at is in the past: give a time to come, or leave it out")
    elif settings.retention_days is not None:
        expires = now_utc() + timedelta(days=settings.retention_days)
    return WriteContext(
        actor=actor(request), consent=consent, expires_at=expires, forget_names=settings.audit_forget_names
    )


@router.get(
    "/audit",
    response_model=AuditPage,
    responses=error_responses(401, 422, 503),
    dependencies=[Depends(require_api_key)],
    summary="The audit trail: enrollments, deletions, expiry erases, exports, renames, merges, moves and dismissed pairs, oldest first",
)
def audit_trail(
    services: ServicesDep,
    identity: str | None = Query(None, max_length=64, description="Only events about this name (any case)."),
    action: Literal[
        "enroll", "delete_face", "delete_identity", "expire", "export", "rename", "merge", "move_face", "dismiss_pair"
    ]
    | None = Query(None),
    since: str | None = Query(None, max_length=64, description="From this time on (ISO 8601 with offset)."),
    until: str | None = Query(None, max_length=64, description="Before this time (ISO 8601 with offset)."),
    after: int = Query(0, ge=0, le=2**62, description="The `next_after` of the previous page."),
    limit: int = Query(100, ge=1, le=PAGE_MAX, description="Events per page."),
) -> dict:
    query = AuditQuery(
        identity=None if identity is None else validate_name(identity),
        action=action,
        since=None if since is None else parse_time(since, "since"),
        until=None if until is None else parse_time(until, "until"),
        after=after,
        limit=limit + 1,  # one more tells whether another page follows
    )
    events = services.gallery.store.audit_events(query)
    page = events[:limit]
    return {
        "events": [e.as_json() for e in page],
        "next_after": page[-1].seq if len(events) > limit else None,
    }
