"""The export of one person's data: one JSON shape, whichever store it came from."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from .audit import AuditEvent, ConsentEntry, IdentityTerms


def thumbnail_text(jpeg: bytes | None) -> str | None:
    """A face's thumbnail in the export: the export is an access request for everything held, so the
    picture itself (base64 JPEG, a few KB), None for a face enrolled before thumbnails were kept."""
    return None if jpeg is None else base64.b64encode(bytes(jpeg)).decode("ascii")


def export_document(
    terms: IdentityTerms, faces: list[dict], events: Sequence[AuditEvent], consents: Sequence[ConsentEntry]
) -> dict:
    """``consent`` is the latest record (as listings show it), ``consents`` every one given,
    oldest first; ``audit`` the person's own events since their first enrollment."""
    return {
        "name": terms.name,
        "enrolled_at": terms.created_at,
        "consent": terms.consent_json(),
        "consents": [entry.as_json() for entry in consents],
        "expires_at": terms.expires_at,
        "faces": faces,
        "audit": [event.as_json() for event in events],
    }
