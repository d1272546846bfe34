"""Accuracy evaluation and threshold calibration: ``evaluate`` and ``calibrate`` subcommands.

How often is the engine wrong on *your* faces, and which threshold gives the false-accept rate
you can live with? ``evaluate`` compares every pair of faces of a labelled dataset, writes the
pairs, an ROC curve, histograms and metrics, and prints a Markdown summary; ``calibrate``
proposes a threshold (``FACE_THRESHOLD``) for a target FAR. Run as ``python -m pipeline evaluate``
or standalone, ``python -m pipeline.evaluation evaluate DATASET``. The maths lives in
:mod:`pipeline.evaluation.metrics`, the datasets in :mod:`pipeline.evaluation.data`; models load only when a
command runs.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference_service.atomic import write_json
from inference_service.registry import EMBEDDER_CHOICES

from .data import (
    MANIFEST_SKIP_ROLES,
    EmbeddedFaces,
    FaceSpec,
    Pair,
    all_pairs,
    embed_specs,
    folder_specs,
    listed_pairs,
    manifest_specs,
    pairs_specs,
    parse_pairs,
)
from .metrics import (
    Calibration,
    accuracy_at,
    best_threshold,
    calibrate,
    closed_set,
    open_set,
    rates_at,
    roc,
    split_identities,
    tar_at_far,
)
from .tracks import evaluate_tracks, format_track_calibration, format_tracks, manifest_clips

REPORT_FARS = (0.01, 0.001)


# --- arguments ------------------------------------------------------------------------------


def _add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset",
        type=Path,
        help="folder of identity sub-folders (NAME/*.jpg), the image folder of --pairs, or the folder of --manifest",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--pairs", type=Path, help="LFW-style pairs.txt; images are DATASET/NAME/NAME_0001.jpg")
    source.add_argument(
        "--manifest",
        action="store_true",
        help="read DATASET/MANIFEST.tsv (or DATASET when it is a .tsv file): identity@x1,y1,x2,y2 per face; "
        "multi-face photos are matched by box, '?' faces are strangers",
    )
    parser.add_argument(
        "--skip-roles",
        type=lambda text: [r for r in text.split(",") if r],
        default=sorted(MANIFEST_SKIP_ROLES),
        metavar="ROLE,...",
        help=f"manifest roles to leave out (default {','.join(sorted(MANIFEST_SKIP_ROLES))}; e.g. add 'hard' "
        "to leave out partial faces)",
    )
    parser.add_argument(
        "--embedder",
        choices=EMBEDDER_CHOICES,
        default=None,
        help="embedder to evaluate (default: FACE_EMBEDDER, else auto)",
    )
    parser.add_argument("--out", type=Path, default=Path("eval"), help="output folder (default: eval/)")
    parser.add_argument(
        "--tracks",
        action="store_true",
        help="also judge labelled tracks (manifest only): the manifest's clips as video jobs analyse them, "
        "labelled in pipeline/evaluation/track_labels.tsv, and tracks simulated from its photos (minutes)",
    )


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``evaluate``."""
    _add_dataset_arguments(parser)
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="threshold to report besides the best one (default: FACE_THRESHOLD, else the embedder's default)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip roc.png and histogram.png")


def add_calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``calibrate``."""
    _add_dataset_arguments(parser)
    parser.add_argument(
        "--far",
        type=float,
        default=0.001,
        help="target false-accept rate, e.g. 0.01 for 1%% (default 0.001)",
    )


# --- loading ----------------------------------------------------------------------------------


@dataclass
class Dataset:
    """Embedded faces and the pairs to judge them by."""

    source: str
    mode: str
    faces: EmbeddedFaces
    pairs: list[Pair]
    same_photo_pairs: int  # genuine pairs of one picture, left out
    skipped_pairs: int  # listed pairs with a face not found
    seconds: float

    @property
    def genuine(self) -> np.ndarray:
        return np.array([p.similarity for p in self.pairs if p.genuine])

    @property
    def impostor(self) -> np.ndarray:
        return np.array([p.similarity for p in self.pairs if not p.genuine])


def load_engine(embedder: str | None):
    """The engine as the service would build it, with ``embedder`` overriding FACE_EMBEDDER."""
    from inference_service.analysis.engine_loader import load_engine as load_service_engine
    from inference_service.config import Settings

    settings = Settings(embedder=embedder) if embedder else Settings()
    return load_service_engine(settings, gallery=settings.gallery), settings


def load_dataset(args: argparse.Namespace, engine, max_pixels: int) -> Dataset:
    """Read the dataset in the layout the arguments name and embed every face once."""
    root: Path = args.dataset
    started = time.perf_counter()
    if args.pairs is not None:
        specs, listed = pairs_specs(root, parse_pairs(Path(args.pairs).read_text()))
        faces = embed_specs(engine, specs, max_pixels)
        pairs, skipped = listed_pairs(specs, faces, listed)
        return Dataset(str(args.pairs), "pairs", faces, pairs, 0, skipped, time.perf_counter() - started)
    if args.manifest or (root.is_file() and root.suffix == ".tsv"):
        manifest = root if root.is_file() else root / "MANIFEST.tsv"
        specs = manifest_specs(manifest, skip_roles=set(args.skip_roles))
        mode, source = "manifest", str(manifest)
    else:
        if not root.is_dir():
            raise ValueError(f"{root}: not a folder")
        specs = folder_specs(root)
        mode, source = "folders", str(root)
    faces = embed_specs(engine, specs, max_pixels)
    pairs, duplicates = all_pairs(faces)
    return Dataset(source, mode, faces, pairs, duplicates, 0, time.perf_counter() - started)


# --- identification -----------------------------------------------------------------------------


def _enrolled_per_identity(specs: Sequence[FaceSpec]) -> dict[str, int]:
    """One face per identity to enroll: a ``gallery``-role photo first, then by name."""
    chosen: dict[str, int] = {}
    order = sorted(range(len(specs)), key=lambda k: (specs[k].role != "gallery", specs[k].label))
    for k in order:
        identity = specs[k].identity
        if identity is not None and identity not in chosen:
            chosen[identity] = k
    return chosen


def identification(faces: EmbeddedFaces, threshold: float) -> dict:
    """Closed-set rank-1 (one photo enrolled per identity) and the open-set half split."""
    specs, emb = faces.specs, faces.embeddings
    enrolled = _enrolled_per_identity(specs)
    if not enrolled:
        return {"closed_set": None, "open_set": None}

    def is_copy_of_enrolled(k: int) -> bool:
        spec = specs[k]
        return spec.identity in enrolled and specs[enrolled[spec.identity]].photo == spec.photo

    names = sorted(enrolled)
    gallery = emb[[enrolled[n] for n in names]]
    probes = [k for k, s in enumerate(specs) if s.identity is not None and not is_copy_of_enrolled(k)]
    closed = closed_set(gallery, names, emb[probes], [str(specs[k].identity) for k in probes], threshold)

    known, unknown = split_identities(names)
    open_gallery = emb[[enrolled[n] for n in known]]
    # Left-out people's photos are all probes; a known person's enrolled photo is not.
    open_probes = [k for k, s in enumerate(specs) if s.identity not in known or not is_copy_of_enrolled(k)]
    opened = open_set(
        open_gallery, known, emb[open_probes], [specs[k].identity for k in open_probes], threshold, known, unknown
    )
    return {
        "closed_set": {**closed.to_dict(), "gallery": {n: specs[enrolled[n]].label for n in names}},
        "open_set": opened.to_dict(),
    }


# --- evaluation -----------------------------------------------------------------------------------


def _summary(values: np.ndarray) -> dict:
    if values.size == 0:
        return {"count": 0}
    return {
        "count": int(values.size),
        "min": float(values.min()),
        "median": float(np.median(values)),
        "max": float(values.max()),
    }


def compute_metrics(data: Dataset, threshold: float, embedder: dict) -> dict:
    """Everything ``metrics.json`` holds, from the embedded faces and their pairs."""
    genuine, impostor = data.genuine, data.impostor
    specs = data.faces.specs
    metrics: dict = {
        "dataset": data.source,
        "mode": data.mode,
        "embedder": embedder,
        "faces": len(specs),
        "identities": len({s.identity for s in specs if s.identity is not None}),
        "strangers": sum(s.identity is None for s in specs),
        "missed_faces": [s.label for s in data.faces.missed],
        "unreadable": data.faces.unreadable,
        "pairs": {
            "genuine": int(genuine.size),
            "impostor": int(impostor.size),
            "same_photo_excluded": data.same_photo_pairs,
            "skipped_face_not_found": data.skipped_pairs,
        },
        "genuine_similarity": _summary(genuine),
        "impostor_similarity": _summary(impostor),
        "seconds": round(data.seconds, 2),
    }
    if genuine.size and impostor.size:
        tar, far = rates_at(genuine, impostor, threshold)
        metrics["default_threshold"] = {
            "threshold": threshold,
            "accuracy": accuracy_at(genuine, impostor, threshold),
            "tar": tar,
            "far": far,
        }
        best, best_acc = best_threshold(genuine, impostor)
        tar_b, far_b = rates_at(genuine, impostor, best)
        metrics["best_threshold"] = {"threshold": best, "accuracy": best_acc, "tar": tar_b, "far": far_b}
        metrics["tar_at_far"] = [
            {**op.to_dict(), "accuracy": accuracy_at(genuine, impostor, op.threshold)}
            for op in (tar_at_far(genuine, impostor, far) for far in REPORT_FARS)
        ]
        metrics["separation"] = {
            "lowest_genuine": float(genuine.min()),
            "highest_impostor": float(impostor.max()),
            "gap": float(genuine.min() - impostor.max()),
        }
    metrics.update(identification(data.faces, threshold))
    return metrics


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


def _pct(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2%}"


def format_summary(metrics: dict) -> str:
    """The Markdown summary ``evaluate`` prints."""
    emb = metrics["embedder"]
    pairs = metrics["pairs"]
    lines = [
        f"## Evaluation: {emb['name']} on {metrics['dataset']} ({metrics['mode']})",
        "",
        f"{metrics['faces']} faces of {metrics['identities']} identities + {metrics['strangers']} strangers; "
        f"{pairs['genuine']} genuine and {pairs['impostor']} impostor pairs"
        + (f" ({pairs['same_photo_excluded']} same-photo pairs left out)" if pairs["same_photo_excluded"] else "")
        + (
            f" ({pairs['skipped_face_not_found']} listed pairs skipped: face not found)"
            if pairs["skipped_face_not_found"]
            else ""
        )
        + ".",
    ]
    if metrics["missed_faces"]:
        lines.append(f"Faces not found (left out): {', '.join(metrics['missed_faces'])}.")
    if "default_threshold" not in metrics:
        lines.append("")
        lines.append("Not enough pairs: need both genuine and impostor pairs for accuracy figures.")
        return "\n".join(lines)
    d, b, s = metrics["default_threshold"], metrics["best_threshold"], metrics["separation"]
    which = "default" if math.isclose(d["threshold"], emb["default_threshold"]) else "configured"
    lines += [
        "",
        "| measure | threshold | accuracy | TAR | FAR |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| accuracy at the {which} threshold | {d['threshold']:.4f} | {_pct(d['accuracy'])} | {_pct(d['tar'])} | {_pct(d['far'])} |",
        f"| accuracy at the best threshold | {b['threshold']:.4f} | {_pct(b['accuracy'])} | {_pct(b['tar'])} | {_pct(b['far'])} |",
    ]
    notes = []
    for op in metrics["tar_at_far"]:
        mark = " *" if op["note"] else ""
        lines.append(
            f"| TAR at FAR {op['target_far']:.1%}{mark} | {op['threshold']:.4f} | {_pct(op['accuracy'])} | "
            f"**{_pct(op['tar'])}** | {_pct(op['far'])} |"
        )
        if op["note"]:
            notes.append(f"\\* FAR {op['target_far']:.1%}: {op['note']}.")
    lines += [
        "",
        f"Same person: lowest {s['lowest_genuine']:.4f}; different people: highest {s['highest_impostor']:.4f} "
        f"(gap {s['gap']:+.4f}: {'separable' if s['gap'] > 0 else 'overlapping'}).",
        *notes,
    ]
    closed, opened = metrics.get("closed_set"), metrics.get("open_set")
    if closed:
        lines += [
            "",
            "| identification | result |",
            "| --- | --- |",
            f"| closed-set rank-1 (one photo enrolled per identity) | {closed['rank1_correct']}/{closed['probes']} = {_pct(closed['rank1'])} |",
            f"| closed-set, named at the threshold | {closed['named_at_threshold']} right, {closed['wrong_at_threshold']} wrong, "
            f"{closed['unknown_at_threshold']} unknown |",
        ]
    if opened:
        lines += [
            f"| open-set: left-out people and strangers returned unknown | {opened['unknown_rejected']}/{opened['unknown_probes']} "
            f"({opened['strangers_rejected']}/{opened['strangers']} strangers); {opened['unknown_named']} named wrongly |",
            f"| open-set: enrolled people's probes | {opened['known_named_correctly']}/{opened['known_probes']} named correctly, "
            f"{opened['known_named_wrongly']} wrongly, {opened['known_unknown']} unknown |",
            "",
            f"Open-set gallery: {', '.join(opened['known_identities'])}; left out: {', '.join(opened['unknown_identities'])}.",
        ]
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    """``evaluate``: write pairs.csv, roc.png, histogram.png, metrics.json; print the summary."""
    try:
        engine, settings = load_engine(args.embedder)
        threshold = engine.threshold if args.threshold is None else args.threshold
        data = load_dataset(args, engine, settings.max_pixels)
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: e.g. embedder weights missing
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    embedder = {**engine.describe(), "default_threshold": engine.embedder.default_threshold}
    metrics = compute_metrics(data, threshold, embedder)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_pairs_csv(out / "pairs.csv", data)
    if not args.no_plots and "best_threshold" in metrics:
        write_plots(
            out, data.genuine, data.impostor, threshold, metrics["best_threshold"]["threshold"], engine.embedder.name
        )
    if args.tracks:
        metrics["tracks"] = _track_section(args, engine, data, threshold, settings.max_pixels)
    _write_json(out / "metrics.json", metrics)
    print(format_summary(metrics))
    if args.tracks:
        print(format_tracks(metrics["tracks"]))
    print(f"\nWrote {out}/pairs.csv, metrics.json" + ("" if args.no_plots else ", roc.png, histogram.png") + ".")
    return 0 if "default_threshold" in metrics else 1


# --- calibration ----------------------------------------------------------------------------------


def format_calibration(cal: Calibration, embedder: dict, source: str) -> str:
    """What ``calibrate`` prints: the proposal, what it gives, how far to trust it, how to use it."""
    lines = [
        f"## Calibration: {embedder['name']} for FAR <= {cal.target_far:.2%} on {source}",
        "",
        f"Proposed threshold: **{cal.threshold:.4f}** (the smallest whose measured FAR is <= the target; "
        f"default for {embedder['name']}: {embedder['default_threshold']}).",
        f"On these faces it accepts {_pct(cal.tar)} of same-person pairs (TAR) and {_pct(cal.far)} of "
        f"{cal.n_impostor} different-person pairs (FAR); the true FAR is below {_pct(cal.far_upper_95)} with 95% confidence.",
    ]
    if cal.conservative_threshold is not None and cal.conservative_threshold > cal.threshold:
        lines.append(
            f"Safety margin: {cal.conservative_threshold:.4f} keeps even the 95% bound within the target "
            f"(TAR {_pct(cal.conservative_tar)})."
        )
    elif cal.conservative_threshold is not None:
        lines.append("Safety margin: the proposal already keeps the 95% bound within the target.")
    if cal.note:
        lines.append(f"Note: {cal.note}.")
    lines += [
        "",
        f"Use it: `FACE_THRESHOLD={cal.threshold:.4f}` in the service's environment "
        f"(with FACE_EMBEDDER={embedder['name']}; a threshold belongs to one embedder).",
    ]
    return "\n".join(lines)


def run_calibrate(args: argparse.Namespace) -> int:
    """``calibrate``: propose FACE_THRESHOLD for ``--far`` from the dataset's impostor pairs."""
    if not 0.0 < args.far < 1.0:
        print("calibrate: --far must lie between 0 and 1, e.g. 0.001", file=sys.stderr)
        return 2
    try:
        engine, settings = load_engine(args.embedder)
        data = load_dataset(args, engine, settings.max_pixels)
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: e.g. embedder weights missing
        print(f"calibrate: {exc}", file=sys.stderr)
        return 2
    if data.impostor.size == 0:
        print("calibrate: no impostor pairs (need faces of at least two people)", file=sys.stderr)
        return 1
    cal = calibrate(data.impostor, args.far, data.genuine)
    embedder = {**engine.describe(), "default_threshold": engine.embedder.default_threshold}
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"dataset": data.source, "embedder": embedder, **cal.to_dict()}
    if args.tracks:
        section = _track_section(args, engine, data, engine.threshold, settings.max_pixels)
        payload["tracks"] = {k: v for k, v in section.items() if k != "tracks"}
    _write_json(args.out / "calibration.json", payload)
    print(format_calibration(cal, embedder, data.source))
    if args.tracks:
        print(format_track_calibration(section))
    return 0


def _track_section(args: argparse.Namespace, engine, data: Dataset, threshold: float, max_pixels: int) -> dict:
    """The labelled track evaluation (``--tracks``), at the template threshold that goes with ``threshold``."""
    from inference_service.analysis.templates import track_threshold_for

    if data.mode != "manifest":
        raise SystemExit("--tracks needs a manifest dataset (--manifest): its clips and labelled photos")
    clips = manifest_clips(Path(data.source))
    return evaluate_tracks(
        engine, data.faces.specs, data.faces.embeddings, clips, threshold, track_threshold_for(threshold), max_pixels
    )


# --- plumbing ---------------------------------------------------------------------------------------


def _write_json(path: Path, payload: dict) -> None:
    """Atomic: a reader never sees half a file."""
    write_json(path, payload, indent=2, default=_json_default)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.evaluation", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    add_evaluate_arguments(commands.add_parser("evaluate", help="accuracy figures for a labelled dataset"))
    add_calibrate_arguments(commands.add_parser("calibrate", help="propose a threshold for a target FAR"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return run_evaluate(args) if args.command == "evaluate" else run_calibrate(args)


# The pure maths, re-exported so callers need one import.
__all__ = [
    "accuracy_at",
    "add_calibrate_arguments",
    "add_evaluate_arguments",
    "best_threshold",
    "calibrate",
    "compute_metrics",
    "main",
    "roc",
    "run_calibrate",
    "run_evaluate",
    "tar_at_far",
]

if __name__ == "__main__":
    sys.exit(main())
