"""The tracks this browser named on video pages, kept in its session for "moves at once" and Undo.

The API's job keeps the analysis as it was (a track enrolled afterwards is still "unknown" there),
so the site remembers each naming it made: the job, the track, the person and the face ids the
API added. The video page then shows the track under its person, and **Undo** deletes exactly
those faces (``DELETE /identities/{name}/faces/{face_id}``). The session cookie is small, so only
the :data:`MAX_NAMINGS` most recent namings are kept; an older one stays enrolled, without Undo.
"""

from __future__ import annotations

from typing import Any

from flask import session

_KEY = "named_tracks"
# Each naming holds up to 5 face ids of 32 hex digits: 8 of them keep the cookie well under 4 KB.
MAX_NAMINGS = 8


def _all() -> list[list[Any]]:
    held = session.get(_KEY)
    return held if isinstance(held, list) else []


def namings(job_id: str) -> dict[int, dict[str, Any]]:
    """Track id -> {"name", "face_ids"} for the tracks of ``job_id`` named here."""
    found = {}
    for entry in _all():
        if isinstance(entry, list) and len(entry) == 4 and entry[0] == job_id:
            found[int(entry[1])] = {"name": str(entry[2]), "face_ids": [str(f) for f in entry[3]]}
    return found


def remember(job_id: str, track_id: int, name: str, face_ids: list[str]) -> None:
    kept = [e for e in _all() if not (e[0] == job_id and e[1] == track_id)]
    kept.append([job_id, track_id, name, face_ids])
    session[_KEY] = kept[-MAX_NAMINGS:]


def forget(job_id: str, track_id: int) -> None:
    session[_KEY] = [e for e in _all() if not (e[0] == job_id and e[1] == track_id)]


_OFFER = "force_offer"


def offer_force(job_id: str, track_id: int) -> None:
    """Offer "Enroll anyway" on this track's form, once: the quality gate refused its faces."""
    session[_OFFER] = [job_id, track_id]


def forced_offer(job_id: str) -> int | None:
    """The track of ``job_id`` whose form offers "Enroll anyway" now (the offer is then spent)."""
    offer = session.pop(_OFFER, None)
    return int(offer[1]) if isinstance(offer, list) and len(offer) == 2 and offer[0] == job_id else None
