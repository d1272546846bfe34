"""Per-person screen time from a timeline: what a reader of a finished job wants first.

Seconds on screen count the distinct frames a person's tracks cover (two tracks of one person
overlapping in time count once), divided by the frame rate. Unknown tracks are different people
as far as anyone knows, so they are summed apart, not merged into one "unknown" person.
"""

from __future__ import annotations


def person_summary(timeline: dict) -> dict:
    fps = float(timeline.get("fps") or 0) or 1.0
    people: dict[str, dict] = {}
    unknown_frames: set[int] = set()
    unknown_tracks = 0
    for track in timeline.get("tracks", []):
        frames = track.get("frames") or []
        if not frames:
            continue
        identity = track.get("identity")
        if identity is None:
            unknown_tracks += 1
            unknown_frames.update(frames)
            continue
        entry = people.setdefault(
            identity, {"identity": identity, "frames": set(), "tracks": 0, "first": None, "last": None}
        )
        entry["frames"].update(frames)
        entry["tracks"] += 1
        entry["first"] = track["start"] if entry["first"] is None else min(entry["first"], track["start"])
        entry["last"] = track["end"] if entry["last"] is None else max(entry["last"], track["end"])
    rows = [
        {
            "identity": e["identity"],
            "seconds": round(len(e["frames"]) / fps, 2),
            "first": e["first"],
            "last": e["last"],
            "tracks": e["tracks"],
        }
        for e in people.values()
    ]
    rows.sort(key=lambda r: (-r["seconds"], r["identity"]))
    return {"people": rows, "unknown": {"tracks": unknown_tracks, "seconds": round(len(unknown_frames) / fps, 2)}}
