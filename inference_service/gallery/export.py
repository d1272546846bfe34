"""The export of one person's data: one JSON shape, whichever store it came from."""

from __future__ import annotations

from collections.abc import Sequence

from .audit import AuditEvent, IdentityTerms


def export_document(terms: IdentityTerms, faces: list[dict], events: Sequence[AuditEvent]) -> dict:
    """The export's one JSON shape, whichever store it came from."""
    return {
        "name": terms.name,
        "enrolled_at": terms.created_at,
        "consent": terms.consent_json(),
        "expires_at": terms.expires_at,
        "faces": faces,
        "audit": [event.as_json() for event in events],
    }
