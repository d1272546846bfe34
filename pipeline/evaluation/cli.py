"""Accuracy evaluation and threshold calibration: ``evaluate`` and ``calibrate`` subcommands.

How often is the engine wrong on *your* faces, and which threshold gives the false-accept rate
you can live with? ``evaluate`` compares every pair of faces of a labelled dataset, writes the
pairs, an ROC curve, histograms and metrics, and prints a Markdown summary; ``calibrate``
proposes a threshold (``FACE_THRESHOLD``) for a target FAR. Run as ``python -m pipeline evaluate``
or standalone, ``python -m pipeline.evaluation evaluate DATASET``. The maths lives in
:mod:`pipeline.evaluation.metrics`, the datasets in :mod:`pipeline.evaluation.data`, the reports in
:mod:`pipeline.evaluation.report` and :mod:`pipeline.evaluation.outputs`; models load only when a
command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from inference_service.registry import EMBEDDER_CHOICES

from .data import (
    MANIFEST_SKIP_ROLES,
)
from .embedded import Dataset, load_dataset, load_engine
from .metrics import (
    accuracy_at,
    best_threshold,
    calibrate,
    roc,
    tar_at_far,
)
from .outputs import _write_json, write_pairs_csv, write_plots
from .report import (
    compute_metrics,
    format_calibration,
    format_summary,
)
from .tracks import evaluate_tracks, format_track_calibration, format_tracks, manifest_clips

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


# --- identification -----------------------------------------------------------------------------


# --- evaluation -----------------------------------------------------------------------------------


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
