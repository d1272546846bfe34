"""``cluster``: group a run's faces into people without labels.

Average-linkage agglomerative clustering on cosine distance, cut at ``1 - threshold`` with the
embedder's own verification threshold: two groups merge only when their faces are, on average,
as similar as two photos the embedder calls the same person. Average linkage (not single) keeps
one stray look-alike frame from chaining two people together. A face left alone is noise (a
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


def cluster_labels(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """A label per row (0-based, arbitrary order); rows of one label form a group."""
    from scipy.cluster.hierarchy import fcluster, linkage

    n = len(vectors)
    if n == 0:
        return np.zeros(0, np.int64)
    if n == 1:
        return np.zeros(1, np.int64)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sims = np.clip(unit @ unit.T, -1.0, 1.0)
    distances = 1.0 - sims[np.triu_indices(n, k=1)]  # condensed form, as linkage wants it
    tree = linkage(np.maximum(distances, 0.0), method="average")
    return fcluster(tree, t=1.0 - threshold, criterion="distance") - 1


def cluster_run(run_dir: Path, threshold: float | None = None, min_size: int = 2) -> dict:
    """Cluster ``faces.json`` of the run; writes ``clusters.json`` and one contact sheet per cluster."""
    run = RunDir(run_dir)
    meta, vectors = run.read_faces()
    faces = meta["faces"]
    if not faces:
        raise PipelineError(f"no faces to cluster in {run.faces_json}: the video showed no face")
    if threshold is None:
        threshold = float(meta["embedder"]["threshold"])
    labels = cluster_labels(vectors, threshold)

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
        "method": "average-linkage agglomerative, cosine distance cut at 1 - threshold",
        "min_size": min_size,
        "clusters": clusters,
        "noise": [faces[r]["id"] for r in noise],
    }
    write_json(run.clusters_json, payload)
    return payload
