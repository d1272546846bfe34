"""Which tracks of a finished video the page offers for naming, and how a naming changes the page.

Tracks are listed in time order. A track is offered for naming only when enrolling it can give a
fair template: the analysis kept faces of it, it has at least the analysis's own ``min_faces``
faces (the recogniser itself never names a shorter track: too few views to trust), and its faces
are at least :data:`MIN_FACE_PX` high. The others are listed apart with the reason.

A naming made on this site shows at once for the browser that made it (:mod:`web_frontend.track_namings`
keeps it in the session): the track moves to its person's row in the table and the timeline.
"""

from __future__ import annotations

import copy
from statistics import median
from typing import Any

# Median face height (pixels of the video) below which a track is not offered for naming. Measured
# on the shared stage clip (640x360, the dlib-resnet detector): Lacamoire at the piano, whose
# enrollment left his own probe photo unrecognised, is 34-35 px high in every frame of the wide
# shot; Miranda in the same shot is 49-61 px, the close-ups and the audience 78-303 px. The
# embedders see 150-160 px chips, so a 40 px face is already scaled up four times.
MIN_FACE_PX = 40


def face_height(track: dict[str, Any]) -> float:
    heights = [b[3] - b[1] for b in track.get("boxes") or [] if len(b) == 4]
    return float(median(heights)) if heights else 0.0


def not_nameable_because(track: dict[str, Any], min_faces: int) -> str | None:
    """Why a track is not offered for naming, in words; None when it is."""
    faces = int(track.get("faces") or 0)
    if faces < min_faces:
        return f"seen in only {faces} frame{'' if faces == 1 else 's'} (naming needs {min_faces})"
    height = face_height(track)
    if height < MIN_FACE_PX:
        return f"faces about {height:.0f} px high, too small to name reliably (at least {MIN_FACE_PX} px)"
    return None


def unknown_tracks(job: dict[str, Any], named: dict[int, Any]) -> tuple[list[dict], list[dict]]:
    """The unknown tracks with kept faces, in time order: (offered for naming, listed apart with a reason).

    Tracks in ``named`` (track id -> naming, this browser's) are in neither: they have a person now.
    """
    timeline = job.get("timeline") or {}
    kept = job.get("track_faces") or {}
    min_faces = int(timeline.get("min_faces") or 1)
    nameable, apart = [], []
    tracks = sorted(timeline.get("tracks", []), key=lambda t: (t["start"], t["track_id"]))
    for track in tracks:
        faces_kept = int(kept.get(str(track["track_id"])) or 0)
        if track.get("identity") is not None or not faces_kept or track["track_id"] in named:
            continue
        row = {"track_id": track["track_id"], "start": track["start"], "end": track["end"], "faces": faces_kept}
        reason = not_nameable_because(track, min_faces)
        if reason is None:
            nameable.append(row)
        else:
            apart.append({**row, "reason": reason})
    return nameable, apart


def with_namings(timeline: dict[str, Any], named: dict[int, str]) -> dict[str, Any]:
    """A copy of ``timeline`` where each track of ``named`` (track id -> person) belongs to its person."""
    if not named:
        return timeline
    changed = copy.deepcopy(timeline)
    for track in changed.get("tracks", []):
        if track["track_id"] in named:
            track["identity"] = named[track["track_id"]]
    return changed


def person_summary(timeline: dict[str, Any]) -> dict[str, Any]:
    """Screen time per person, as the API's job summary counts it (distinct frames / fps), for a timeline
    the site changed with :func:`with_namings` (the API's own summary predates the naming)."""
    fps = float(timeline.get("fps") or 0) or 1.0
    people: dict[str, dict[str, Any]] = {}
    unknown_frames: set[int] = set()
    unknown_count = 0
    for track in timeline.get("tracks", []):
        frames = track.get("frames") or []
        if not frames:
            continue
        identity = track.get("identity")
        if identity is None:
            unknown_count += 1
            unknown_frames.update(frames)
            continue
        entry = people.setdefault(identity, {"frames": set(), "tracks": 0, "first": track["start"], "last": 0.0})
        entry["frames"].update(frames)
        entry["tracks"] += 1
        entry["first"] = min(entry["first"], track["start"])
        entry["last"] = max(entry["last"], track["end"])
    rows = [
        {
            "identity": name,
            "seconds": round(len(e["frames"]) / fps, 2),
            "first": e["first"],
            "last": e["last"],
            "tracks": e["tracks"],
        }
        for name, e in people.items()
    ]
    rows.sort(key=lambda r: (-r["seconds"], r["identity"]))
    return {"people": rows, "unknown": {"tracks": unknown_count, "seconds": round(len(unknown_frames) / fps, 2)}}
