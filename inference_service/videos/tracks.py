"""Enrolling a person from a finished job's track: the faces the analysis kept for it.

The job kept each track's best faces (``analysis.annotate.Hooks.best_faces``): their embeddings,
boxes and crops stay in the result folder until retention removes it, so naming someone seen in
a video needs neither the video nor a second analysis. Once a track is enrolled its kept faces
are that person's data: :func:`erase_track` removes all of them (crops, embeddings, index rows)
when the person is erased.
"""

from __future__ import annotations

import json

import numpy as np

from ..analysis.annotate import FACES_EMBEDDINGS, FACES_INDEX
from ..analysis.quality import FaceQuality, enrollment_problems
from ..atomic import write_json, write_npy
from ..engine.thumbnails import shrink_jpeg
from .errors import VideoError, VideoErrorKind
from .files import JobFiles


class TrackError(VideoError):
    """A track that cannot be enrolled: no kept face, none good enough, another embedder's faces, erased."""


def kept_faces(files: JobFiles) -> dict:
    path = files.results / FACES_INDEX
    if not path.is_file():
        return {"embedder": None, "faces": []}
    return json.loads(path.read_text())


def faces_per_track(files: JobFiles) -> dict[int, int]:
    counts: dict[int, int] = {}
    for row in kept_faces(files)["faces"]:
        counts[row["track_id"]] = counts.get(row["track_id"], 0) + 1
    return counts


def crop_path(files: JobFiles, track_id: int, number: int):
    for row in kept_faces(files)["faces"]:
        if row["track_id"] == track_id and row.get("crop") == f"faces/{track_id}_{number}.jpg":
            return files.results / row["crop"]
    return None


def _problems(row: dict) -> list[str]:
    """The enrollment gate on a kept face (none for jobs that predate the gate's measurements)."""
    quality = row.get("quality")
    return enrollment_problems(FaceQuality(**quality)) if quality else []


def enroll_track(files: JobFiles, track_id: int, name: str, gallery, max_faces: int, force: bool = False) -> dict:
    """Enroll up to ``max_faces`` kept faces of the track under ``name``; the enroll answer.

    Faces that fail the enrollment quality gate are left out (listed under ``skipped``) unless
    ``force``; a track with no face that passes is refused (422) saying why.
    """
    index = kept_faces(files)
    rows = [r for r in index["faces"] if r["track_id"] == track_id]
    if not rows:
        raise TrackError(VideoErrorKind.NO_FACES, f"track {track_id} of this video has no kept faces")
    skipped = [] if force else [r for r in rows if _problems(r)]
    rows = [r for r in rows if r not in skipped][:max_faces]
    if not rows:
        reasons = "; ".join(dict.fromkeys(p for r in skipped for p in _problems(r)))
        raise TrackError(
            VideoErrorKind.LOW_QUALITY,
            f"track {track_id} not enrolled: none of its {len(skipped)} kept faces is good enough for a reliable "
            f"reference ({reasons}); enroll the person from a clearer photo or track, or send force=true",
        )
    if index.get("embedder") != gallery.embedder_name:
        raise TrackError(
            VideoErrorKind.EMBEDDER_MISMATCH,
            f"this job's faces were embedded with {index.get('embedder')}, the gallery uses {gallery.embedder_name}",
        )
    vectors = np.load(files.results / FACES_EMBEDDINGS, mmap_mode="r")
    chosen = np.stack([np.asarray(vectors[r["row"]], dtype=np.float32) for r in rows])
    records = gallery.enroll(name, chosen, [r["box"] for r in rows], [_thumbnail(files, r) for r in rows])
    stored = gallery.faces_of(records[0].identity) or []
    return {
        "identity": records[0].identity,
        "added": [{"face_id": rec.face_id, "box": row["box"]} for rec, row in zip(records, rows)],
        "faces": len(stored),
        "skipped": [{"box": r["box"], "reasons": _problems(r)} for r in skipped],
    }


def _thumbnail(files: JobFiles, row: dict) -> bytes | None:
    """The gallery's thumbnail of a kept face, from its crop (None when the crop is gone)."""
    path = files.results / row["crop"] if row.get("crop") else None
    return shrink_jpeg(path.read_bytes()) if path is not None and path.is_file() else None


def erase_track(files: JobFiles, track_id: int) -> int:
    """Remove every face the job kept for the track: its index rows first (nothing served points
    at them any more), then its embeddings (rows zeroed in a rewritten file, so the others keep
    their row numbers), then its crops. The number of faces removed; 0 when the job is gone."""
    index = kept_faces(files)
    rows = [r for r in index["faces"] if r["track_id"] == track_id]
    if not rows:
        return 0
    index["faces"] = [r for r in index["faces"] if r["track_id"] != track_id]
    write_json(files.results / FACES_INDEX, index)
    embeddings = files.results / FACES_EMBEDDINGS
    if embeddings.is_file():
        vectors = np.load(embeddings)
        vectors[[r["row"] for r in rows]] = 0
        write_npy(embeddings, vectors)
    for row in rows:
        if row.get("crop"):
            (files.results / row["crop"]).unlink(missing_ok=True)
    return len(rows)
