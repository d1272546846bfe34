"""``plots``: three pictures of a run, with matplotlib (Agg, no display needed).

* ``plots/frames.png``: up to 12 evenly spaced frames with their face boxes, coloured by cluster;
* ``plots/embeddings.png``: every face embedding projected to 2-D (PCA, or t-SNE on request),
  coloured by cluster; noise in grey;
* ``plots/similarity.png``: the cosine-similarity matrix of the faces ordered by cluster, so each
  person is a bright block on the diagonal and a look-alike is a bright off-diagonal patch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import PipelineError
from .rundir import RunDir

MAX_FRAMES = 12
MAX_HEATMAP = 1500  # faces; a larger run is subsampled evenly (the picture has ~1000 pixels anyway)
NOISE = "noise"


def _labels(run: RunDir, count: int) -> tuple[list[str], list[str]]:
    """A label per face ("1", "2", ... or noise) and the label order, largest cluster first."""
    if not run.clusters_json.is_file():
        return ["unclustered"] * count, ["unclustered"]
    clusters = run.read_clusters()["clusters"]
    labels = [NOISE] * count
    for c in clusters:
        for face_id in c["faces"]:
            if face_id < count:
                labels[face_id] = str(c["id"])
    order = [str(c["id"]) for c in clusters] + ([NOISE] if NOISE in labels else [])
    return labels, order


def _colours(order: list[str]) -> dict[str, tuple]:
    import matplotlib

    palette = matplotlib.colormaps["tab20"]
    spread = list(range(0, 20, 2)) + list(range(1, 20, 2))  # the strong tone of each pair first
    out = {}
    for k, label in enumerate(name for name in order if name != NOISE):
        out[label] = palette(spread[k % 20])
    out[NOISE] = (0.6, 0.6, 0.6, 1.0)
    return out


def make_plots(run_dir: Path, tsne: bool = False) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    run = RunDir(run_dir)
    meta, vectors = run.read_faces()
    faces = meta["faces"]
    if not faces:
        raise PipelineError(f"no faces in {run.faces_json}: nothing to plot")
    labels, order = _labels(run, len(faces))
    colours = _colours(order)
    run.plots_dir.mkdir(parents=True, exist_ok=True)
    return [
        _frames_plot(run, faces, labels, colours),
        _embedding_plot(run, vectors, labels, order, colours, tsne),
        _similarity_plot(run, vectors, labels, order),
    ]


def _frames_plot(run: RunDir, faces: list[dict], labels: list[str], colours: dict) -> Path:
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from PIL import Image

    frames = run.read_frames()["frames"]
    picks = sorted(set(np.linspace(0, len(frames) - 1, min(MAX_FRAMES, len(frames))).round().astype(int)))
    by_frame: dict[int, list[int]] = {}
    for row, face in enumerate(faces):
        by_frame.setdefault(face["frame"], []).append(row)
    cols = min(4, len(picks))
    rows = -(-len(picks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, k in zip(axes.flat, picks):
        frame = frames[k]
        with Image.open(run.root / frame["file"]) as image:
            ax.imshow(image.convert("RGB"))
        for row in by_frame.get(frame["index"], []):
            x1, y1, x2, y2 = faces[row]["box"]
            colour = colours.get(labels[row], colours[NOISE])
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=2))
            ax.text(x1, y1 - 3, labels[row], color="white", fontsize=7, bbox=dict(facecolor=colour, pad=1, linewidth=0))
        ax.set_title(f"frame {frame['index']}  t={frame['time']:.2f} s", fontsize=8)
    fig.suptitle(f"{len(frames)} frames, {len(faces)} faces (boxes coloured by cluster)", fontsize=10)
    fig.tight_layout()
    out = run.plots_dir / "frames.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _embedding_plot(
    run: RunDir, vectors: np.ndarray, labels: list[str], order: list[str], colours: dict, tsne: bool
) -> Path:
    import matplotlib.pyplot as plt

    if len(vectors) < 3:
        points = np.zeros((len(vectors), 2))
        method = "too few faces to project"
    elif tsne:
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, len(vectors) // 4)))
        points = TSNE(n_components=2, metric="cosine", perplexity=perplexity, init="pca", random_state=0).fit_transform(
            vectors
        )
        method = "t-SNE (cosine)"
    else:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=0)
        points = pca.fit_transform(vectors)
        method = f"PCA ({100 * pca.explained_variance_ratio_.sum():.0f}% of the variance)"
    fig, ax = plt.subplots(figsize=(7, 6))
    labels_arr = np.array(labels)
    for label in order:
        mask = labels_arr == label
        if mask.any():
            name = label if label in (NOISE, "unclustered") else f"cluster {label}"
            ax.scatter(
                points[mask, 0],
                points[mask, 1],
                s=14,
                color=colours.get(label, colours[NOISE]),
                label=f"{name} ({int(mask.sum())})",
                alpha=0.85,
            )
    ax.set_title(f"face embeddings, {method}")
    ax.legend(fontsize=7, loc="best", markerscale=1.5)
    fig.tight_layout()
    out = run.plots_dir / "embeddings.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _similarity_plot(run: RunDir, vectors: np.ndarray, labels: list[str], order: list[str]) -> Path:
    import matplotlib.pyplot as plt

    rank = {label: k for k, label in enumerate(order)}
    rows = sorted(range(len(labels)), key=lambda r: (rank.get(labels[r], len(order)), r))
    if len(rows) > MAX_HEATMAP:
        rows = [rows[i] for i in np.linspace(0, len(rows) - 1, MAX_HEATMAP).round().astype(int)]
    unit = vectors[rows] / np.maximum(np.linalg.norm(vectors[rows], axis=1, keepdims=True), 1e-12)
    sims = unit @ unit.T
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(sims, cmap="viridis", vmin=float(np.percentile(sims, 1)), vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="cosine similarity")
    ordered = [labels[r] for r in rows]
    edges = [k for k in range(1, len(ordered)) if ordered[k] != ordered[k - 1]]
    for edge in edges:
        ax.axhline(edge - 0.5, color="white", linewidth=0.6)
        ax.axvline(edge - 0.5, color="white", linewidth=0.6)
    starts = [0] + edges
    ends = edges + [len(ordered)]
    ticks = [(s + e - 1) / 2 for s, e in zip(starts, ends)]
    names = [ordered[s] for s in starts]
    if len(ticks) <= 30:
        ax.set_xticks(ticks, names, fontsize=7, rotation=90)
        ax.set_yticks(ticks, names, fontsize=7)
    ax.set_title("face-to-face similarity, ordered by cluster")
    fig.tight_layout()
    out = run.plots_dir / "similarity.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
