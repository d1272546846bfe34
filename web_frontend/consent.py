"""The consent record the site sends with an enrollment: what the user ticked and typed.

The API keeps at most 200 characters (``FACE_REQUIRE_CONSENT`` may require one); the tick is
recorded in words, followed by the note typed beside it (a form number, a date, an email).
"""

from __future__ import annotations

NOTE_MAX_LENGTH = 140  # leaves room for the words of the tick within the API's 200


class ConsentNoteError(ValueError):
    """A note the API would refuse; the message says what to change."""


def consent_record(note: str, form: str) -> str:
    """``agreed (ticked on the site's Enroll form): signed form 12`` from a ticked box and a note."""
    note = " ".join(note.split())  # line breaks and tabs would be refused as control characters
    if len(note) > NOTE_MAX_LENGTH:
        raise ConsentNoteError(f"Keep the consent note to {NOTE_MAX_LENGTH} characters (it has {len(note)}).")
    ticked = f"agreed (ticked on the site's {form} form)"
    return f"{ticked}: {note}" if note else ticked
