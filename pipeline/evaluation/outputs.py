"""The evaluation's files: every pair as CSV, the ROC and score histograms as PNG, metrics as JSON."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from inference_service.atomic import write_json

from .embedded import Dataset
from .metrics import (
    roc,
)
from .report import REPORT_FARS


def write_pairs_csv(path: Path, data: Dataset) -> None:
    specs = data.faces.specs
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["face_a", "identity_a", "face_b", "identity_b", "genuine", "similarity"])
        for p in sorted(data.pairs, key=lambda p: -p.similarity):
            a, b = specs[p.a], specs[p.b]
            writer.writerow(
                [a.label, a.identity or "?", b.label, b.identity or "?", int(p.genuine), f"{p.similarity:.6f}"]
            )


def write_plots(
    out: Path, genuine: np.ndarray, impostor: np.ndarray, threshold: float, best: float, title: str
) -> None:
    """roc.png (TAR against FAR, log scale) and histogram.png (both similarity distributions)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, far, tar = roc(genuine, impostor)
    floor = 1.0 / max(impostor.size, 1)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.step(np.maximum(far, floor / 2), tar, where="post", label=f"{title}")
    for target in REPORT_FARS:
        ax.axvline(target, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlim(floor / 2, 1.0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"false-accept rate ({impostor.size} impostor pairs; left edge = none accepted)")
    ax.set_ylabel(f"true-accept rate ({genuine.size} genuine pairs)")
    ax.set_title("ROC")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    lo = min(genuine.min(initial=1.0), impostor.min(initial=1.0))
    bins = np.linspace(lo, 1.0, 50).tolist()
    ax.hist(impostor, bins=bins, alpha=0.6, density=True, label=f"different people ({impostor.size})")
    ax.hist(genuine, bins=bins, alpha=0.6, density=True, label=f"same person ({genuine.size})")
    ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.3f}")
    ax.axvline(best, color="r", ls=":", lw=1, label=f"best {best:.3f}")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.set_title(f"Similarity of face pairs: {title}")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "histogram.png", dpi=110)
    plt.close(fig)


def _write_json(path: Path, payload: dict) -> None:
    """Atomic: a reader never sees half a file."""
    write_json(path, payload, indent=2, default=_json_default)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
