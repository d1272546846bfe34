"""``cluster``: group a run's faces into people without labels.

Average-linkage agglomerative clustering on cosine distance, cut at ``1 - threshold`` with the
embedder's own verification threshold: two groups merge only when their faces are, on average,
as similar as two photos the embedder calls the same person. Average linkage (not single) keeps
one stray look-alike frame from chaining two people together, and two faces of one frame are
never one person. A face left alone is noise (a
false detection, a passer-by, a profile), listed apart rather than as a one-face "person".
Clusters are numbered 1, 2, ... from the largest down.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inference_service.atomic import write_json

from ..errors import PipelineError
from .rundir import RunDir
from .sheets import contact_sheet


def cluster_labels(vectors: np.ndarray, threshold: float, frames: np.ndarray | None = None) -> np.ndarray:
    """A label per row (0-based, arbitrary order); rows of one label form a group.

    With ``frames`` (the frame of each row), two faces of one frame are two people: their distance
    is the largest there is, so average linkage rarely joins them, and a group that still holds
    two faces of one frame keeps the one closest to its centre and gives the others groups of
    their own (a crowd of look-alike small faces otherwise averaged into one "person").
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    n = len(vectors)
    if n == 0:
        return np.zeros(0, np.int64)
    if n == 1:
        return np.zeros(1, np.int64)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sims = np.clip(unit @ unit.T, -1.0, 1.0)
    if frames is not None:
        sims[frames[:, None] == frames[None, :]] = -1.0
        np.fill_diagonal(sims, 1.0)
    distances = 1.0 - sims[np.triu_indices(n, k=1)]  # condensed form, as linkage wants it
    tree = linkage(np.maximum(distances, 0.0), method="average")
    labels = fcluster(tree, t=1.0 - threshold, criterion="distance") - 1
    return labels if frames is None else _one_face_per_frame(labels, unit, frames)


def _one_face_per_frame(labels: np.ndarray, unit: np.ndarray, frames: np.ndarray) -> np.ndarray:
    out = labels.copy()
    next_label = int(labels.max()) + 1
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if len(np.unique(frames[rows])) == len(rows):
            continue
        centre = unit[rows].mean(axis=0)
        closeness = unit[rows] @ centre
        kept: set[int] = set()
        for k in np.argsort(-closeness):  # the closest face of each frame stays
            frame = int(frames[rows[k]])
            if frame in kept:
                out[rows[k]] = next_label
                next_label += 1
            else:
                kept.add(frame)
    return out


def cluster_run(run_dir: Path, threshold: float | None = None, min_size: int = 2) -> dict:
    """Cluster ``faces.json`` of the run; writes ``clusters.json`` and one contact sheet per cluster."""
    run = RunDir(run_dir)
    meta, vectors = run.read_faces()
    faces = meta["faces"]
    if not faces:
        raise PipelineError(f"no faces to cluster in {run.faces_json}: the video showed no face")
    if threshold is None:
        threshold = float(meta["embedder"]["threshold"])
    labels = cluster_labels(vectors, threshold, np.array([f["frame"] for f in faces]))

    groups: dict[int, list[int]] = {}
    for row, label in enumerate(labels):
        groups.setdefault(int(label), []).append(row)
    members = sorted((rows for rows in groups.values() if len(rows) >= min_size), key=lambda r: (-len(r), r[0]))
    noise = sorted(row for rows in groups.values() if len(rows) < min_size for row in rows)

    for old in run.sheets_dir.glob("cluster_*.jpg") if run.sheets_dir.exists() else []:
        old.unlink()
    clusters = []
    for number, rows in enumerate(members, start=1):
        unit = vectors[rows]
        centroid = unit.mean(axis=0)
        centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
        frames = sorted({faces[r]["frame"] for r in rows})
        sheet = run.sheets_dir / f"cluster_{number:03d}.jpg"
        contact_sheet(
            [run.root / faces[r]["crop"] for r in rows],
            f"cluster {number}: {len(rows)} faces in {len(frames)} frames",
            sheet,
        )
        clusters.append(
            {
                "id": number,
                "size": len(rows),
                "faces": [faces[r]["id"] for r in rows],
                "frames": frames,
                "cohesion": round(float(np.mean(unit @ centroid)), 4),  # mean similarity to the centre
                "sheet": str(sheet.relative_to(run.root)),
            }
        )
    if noise:
        contact_sheet(
            [run.root / faces[r]["crop"] for r in noise], f"noise: {len(noise)} faces", run.sheets_dir / "noise.jpg"
        )
    payload = {
        "embedder": meta["embedder"]["name"],
        "threshold": threshold,
        "method": "average-linkage agglomerative, cosine distance cut at 1 - threshold, one face per frame",
        "min_size": min_size,
        "clusters": clusters,
        "noise": [faces[r]["id"] for r in noise],
    }
    write_json(run.clusters_json, payload)
    return payload
