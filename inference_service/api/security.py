"""API-key checks: the write key for the endpoints that change the gallery (enroll, delete) or
reveal what it holds about people (export, the audit trail), and an optional read key for the
ones that answer from it or run the models.

There may be several write keys, one per client, each with a label (``FACE_API_KEYS``;
``FACE_API_KEY`` is labelled ``default``): the audit trail records which label acted.

Reads stay open by default: recognising a face reveals less than being able to plant or erase
one. Where even the enrolled names are private, ``FACE_READ_API_KEY`` closes recognition,
verification, embedding, detection and the listings too; the write key opens them as well, so
the site needs one key. ``/health`` stays open for probes. Keys are compared with
:func:`hmac.compare_digest`, whose time does not depend on where the first differing byte is,
so a key cannot be guessed one character at a time from response times.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader

log = logging.getLogger(__name__)

api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description=(
        "Needed for enrollment, deletion, export and the audit trail when the service runs with "
        "FACE_API_KEY or FACE_API_KEYS, and for the "
        "other endpoints but /health when it runs with FACE_READ_API_KEY (either key opens those)."
    ),
)


# The same header, declared as a second scheme so the spec can tell the two apart: the read key
# is declared on an operation only when the service runs with FACE_READ_API_KEY (see app.py).
READ_SCHEME = "ReadKey"
read_key_header = APIKeyHeader(
    name="X-API-Key",
    scheme_name=READ_SCHEME,
    auto_error=False,
    description="FACE_READ_API_KEY's key (or a write key), on every endpoint but /health when it is set.",
)


def key_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison of the presented key with the configured one."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def matching_label(given: str | None, keys: dict[str, str]) -> str | None:
    """The label of the write key presented, None for none. Every key is compared, so the time
    does not tell which one was nearly right."""
    found = None
    for label, expected in keys.items():
        if key_matches(given, expected) and found is None:
            found = label
    return found


async def require_api_key(request: Request, given: str | None = Security(api_key_header)) -> None:
    """Dependency: 401 unless no write key is set (FACE_API_KEY, FACE_API_KEYS) or the X-API-Key
    header matches one; the matching key's label is left in ``request.state.key_label`` for the
    audit trail (None when the service runs without write keys)."""
    keys = request.app.state.services.settings.write_keys()
    request.state.key_label = None
    if not keys:
        return
    label = matching_label(given, keys)
    request.state.key_label = label
    if label is None:
        raise HTTPException(
            status_code=401,
            detail="a valid X-API-Key header is required to change the gallery",
            headers={"WWW-Authenticate": "ApiKey"},
        )


async def require_read_key(request: Request, given: str | None = Security(read_key_header)) -> None:
    """Dependency: 401 unless FACE_READ_API_KEY is unset or the header matches it or FACE_API_KEY."""
    settings = request.app.state.services.settings
    if not settings.read_api_key:
        return
    # Every comparison always runs, so the time does not tell which key was nearly right.
    write = matching_label(given, settings.write_keys())
    if not key_matches(given, settings.read_api_key) and write is None:
        raise HTTPException(
            status_code=401,
            detail="a valid X-API-Key header is required to use this service (it runs with FACE_READ_API_KEY)",
            headers={"WWW-Authenticate": "ApiKey"},
        )


def warn_if_open(api_key: str | None, labelled_keys: str | None = None) -> None:
    """Log once at start when anyone who can reach the port may enroll and delete."""
    if not api_key and not labelled_keys:
        log.warning(
            "FACE_API_KEY is not set: anyone who can reach this service can enroll and delete "
            "identities. Set FACE_API_KEY before exposing it beyond this machine."
        )
