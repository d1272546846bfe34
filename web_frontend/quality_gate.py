"""The API's enrollment quality gate, told in the site's words (README 'Enrollment quality gate')."""

from __future__ import annotations

import re
from collections.abc import Mapping

from face_client import ApiError

# The API ends a quality refusal by naming its override; the site offers a checkbox instead.
_OVERRIDE = re.compile(r",? or (?:send )?force=true(?: to enroll it anyway)?", re.IGNORECASE)


def quality_refusal(exc: ApiError) -> str | None:
    """The reason a face was refused as too poor to enroll, or None for any other error.

    Only this refusal may be overridden (``force``), so only it offers "Enroll anyway"; a
    photo without a face stays refused whatever the box says."""
    if exc.status != 422 or "force=true" not in exc.message:
        return None
    return _OVERRIDE.sub(', or tick "Enroll anyway"', exc.message)


def skipped_note(result: Mapping[str, object]) -> str | None:
    """Says how many of a track's faces the gate left out and why, or None when it left none.

    ``skipped`` is read defensively: an older API sends none, and the client's type leaves it out."""
    skipped = result.get("skipped")
    if not isinstance(skipped, list) or not skipped:
        return None
    reasons = [r for item in skipped if isinstance(item, dict) for r in item.get("reasons") or []]
    said = "; ".join(dict.fromkeys(str(r) for r in reasons))
    count = len(skipped)
    return f"Left out {count} poor face{'' if count == 1 else 's'}" + (f" ({said})." if said else ".")
