"""``python -m pipeline``: from a video to named people, on the same engine as the API.

    extract VIDEO --out RUN      frames every S seconds of a window (file, http(s) URL, YouTube)
    faces RUN                    detect and embed every frame
    cluster RUN                  group the faces into people, with a contact sheet each
    plots RUN                    frames, embedding map, similarity heatmap
    run VIDEO --out RUN          extract + faces + cluster + plots
    enroll RUN --cluster ID --name NAME (--api URL | --gallery FILE)
    annotate VIDEO (--api URL | --gallery FILE) --out RUN [--every-frame]
    evaluate / calibrate         embedder accuracy and threshold (pipeline.evaluation)

Models load only in the commands that need them. A problem the user can fix (unreadable video,
empty window, no faces, unknown cluster, API unreachable) ends with a one-line message on stderr
and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from face_client import ApiError
from inference_service.analysis.errors import AnalysisError
from inference_service.registry import EMBEDDER_CHOICES, describe_choices

from .errors import PipelineError
from .video.faces import DEFAULT_BATCH


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return number


def _non_negative(value: str) -> float:
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return number


def _window_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", type=_non_negative, default=0.0, help="first second of the window (default 0)")
    parser.add_argument(
        "--duration", type=_positive, default=None, help="length of the window in seconds (default: to the end)"
    )
    parser.add_argument(
        "--every",
        type=_positive,
        default=1.0,
        help="one frame every S seconds (default 1; below one frame period: every frame)",
    )


def _embedder_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--embedder",
        default=None,
        choices=EMBEDDER_CHOICES,
        metavar="NAME",
        help=f"{describe_choices()} (default: FACE_EMBEDDER, else auto)",
    )


def _target_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--api",
        metavar="URL",
        help="the inference API, e.g. http://127.0.0.1:8000 (sends X-API-Key from FACE_API_KEY when set)",
    )
    target.add_argument(
        "--gallery",
        metavar="FILE|URL",
        help="a gallery as FACE_GALLERY takes it: a SQLite file, sqlite:///path or postgresql://...",
    )


# -- command handlers ------------------------------------------------------------------------------
def cmd_extract(args: argparse.Namespace) -> int:
    from .video.frames import extract

    meta = extract(args.video, args.out, args.start, args.duration, args.every)
    print(f"{len(meta['frames'])} frames of {args.video} -> {args.out / 'frames.json'}")
    return 0


def _faces(run: Path, embedder: str | None, batch: int) -> dict:
    from .video.engine_loader import load_engine
    from .video.faces import detect_faces

    return detect_faces(run, load_engine(embedder), batch)


def cmd_faces(args: argparse.Namespace) -> int:
    meta = _faces(args.run, args.embedder, args.batch)
    print(
        f"{len(meta['faces'])} faces in {meta['frames']} frames ({meta['embedder']['name']}) -> {args.run / 'faces.json'}"
    )
    return 0


def _print_clusters(payload: dict, run: Path) -> None:
    clusters = payload["clusters"]
    print(f"{len(clusters)} clusters, {len(payload['noise'])} faces as noise -> {run / 'clusters.json'}")
    for c in clusters:
        print(f"  cluster {c['id']}: {c['size']} faces in {len(c['frames'])} frames  ({run / c['sheet']})")


def cmd_cluster(args: argparse.Namespace) -> int:
    from .video.clustering import cluster_run

    payload = cluster_run(args.run, args.threshold, args.min_size)
    _print_clusters(payload, args.run)
    return 0


def cmd_plots(args: argparse.Namespace) -> int:
    from .video.plots import make_plots

    for path in make_plots(args.run, tsne=args.tsne):
        print(path)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .video.clustering import cluster_run
    from .video.frames import extract
    from .video.plots import make_plots

    meta = extract(args.video, args.out, args.start, args.duration, args.every)
    print(f"{len(meta['frames'])} frames extracted")
    faces = _faces(args.out, args.embedder, args.batch)
    print(f"{len(faces['faces'])} faces found")
    _print_clusters(cluster_run(args.out, args.threshold), args.out)
    if not args.no_plots:
        for path in make_plots(args.out):
            print(path)
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    from .video.enroll import enroll_cluster

    summary = enroll_cluster(
        args.run,
        args.cluster,
        args.name,
        api=args.api,
        gallery=args.gallery,
        count=args.count,
        consent=args.consent,
        force=args.force,
    )
    print(
        f"enrolled {summary['added']} face(s) of cluster {args.cluster} as {summary['name']!r} "
        f"via {summary['via']} (the identity now has {summary['total']} face(s))"
    )
    return 0


def cmd_annotate(args: argparse.Namespace) -> int:
    from .video.annotate import annotate

    timeline = annotate(
        args.video,
        args.out,
        api=args.api,
        gallery=args.gallery,
        stride=1 if args.every_frame else args.stride,
        threshold=args.threshold,
        margin=args.margin,
        min_faces=args.min_faces,
        embedder=args.embedder,
    )
    named = [t for t in timeline["tracks"] if t["identity"]]
    print(
        f"{len(timeline['tracks'])} tracks, {len(named)} named -> {args.out / 'annotated.mp4'}, {args.out / 'timeline.json'}"
    )
    for t in named:
        print(f"  {t['identity']}: {t['start']:.2f}-{t['end']:.2f} s, similarity {t['similarity']:.3f}")
    return 0


def _evaluation(name: str) -> Callable:
    return getattr(importlib.import_module("pipeline.evaluation.cli"), name)


# -- parser ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Video face pipeline: extract frames, find and cluster faces, enroll people, annotate videos.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the models and steps do")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "extract",
        help="frames of a video window as JPEGs + frames.json",
        description="Extract one frame every S seconds of a window of VIDEO (a file, an http(s) "
        "URL, or a YouTube URL when yt-dlp is installed) into RUN/frames with RUN/frames.json.",
    )
    p.add_argument("video", help="video file or URL")
    p.add_argument("--out", type=Path, required=True, help="run folder to write")
    _window_arguments(p)
    p.set_defaults(handler=cmd_extract)

    p = sub.add_parser(
        "faces",
        help="detect and embed every extracted frame",
        description="Detect and embed the faces of every frame of RUN in batches: RUN/faces.json, "
        "RUN/embeddings.npy, RUN/crops/.",
    )
    p.add_argument("run", type=Path, help="run folder made by extract")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, help=f"frames per batch (default {DEFAULT_BATCH})")
    _embedder_argument(p)
    p.set_defaults(handler=cmd_faces)

    p = sub.add_parser(
        "cluster",
        help="group the faces into people",
        description="Cluster the faces of RUN (average linkage on cosine distance at the embedder's "
        "threshold); singletons are noise. Writes RUN/clusters.json and RUN/clusters/cluster_ID.jpg.",
    )
    p.add_argument("run", type=Path, help="run folder made by faces")
    p.add_argument("--threshold", type=float, default=None, help="cosine threshold (default: the embedder's)")
    p.add_argument("--min-size", type=int, default=2, help="smallest cluster; smaller groups are noise (default 2)")
    p.set_defaults(handler=cmd_cluster)

    p = sub.add_parser(
        "plots",
        help="frames grid, embedding map and similarity heatmap",
        description="Write RUN/plots/frames.png, embeddings.png and similarity.png.",
    )
    p.add_argument("run", type=Path, help="run folder made by faces (and cluster)")
    p.add_argument("--tsne", action="store_true", help="t-SNE instead of PCA for the embedding map")
    p.set_defaults(handler=cmd_plots)

    p = sub.add_parser(
        "run",
        help="extract + faces + cluster + plots in one go",
        description="Extract, detect and embed, cluster and plot VIDEO into RUN.",
    )
    p.add_argument("video", help="video file or URL")
    p.add_argument("--out", type=Path, required=True, help="run folder to write")
    _window_arguments(p)
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, help=f"frames per batch (default {DEFAULT_BATCH})")
    p.add_argument("--threshold", type=float, default=None, help="clustering threshold (default: the embedder's)")
    p.add_argument("--no-plots", action="store_true", help="skip the plots")
    _embedder_argument(p)
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser(
        "enroll",
        help="enroll a cluster's best faces under a name",
        description="Enroll the sharpest, most frontal faces of one cluster of RUN under NAME, "
        "through the API (POST /identities/NAME/faces) or straight into a gallery file.",
    )
    p.add_argument("run", type=Path, help="run folder made by cluster")
    p.add_argument("--cluster", type=int, required=True, help="cluster id from clusters.json")
    p.add_argument("--name", required=True, help="identity name")
    p.add_argument("--count", type=int, default=5, help="how many faces to enroll (default 5)")
    p.add_argument(
        "--consent",
        metavar="TEXT",
        help="the person's consent, stored with the identity "
        "(e.g. 'signed form 2026-03-14', at most 200 characters; required by FACE_REQUIRE_CONSENT)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="also enroll faces the quality gate leaves out (narrower than 40 px, too dark or too blurred)",
    )
    _target_arguments(p)
    p.set_defaults(handler=cmd_enroll)

    p = sub.add_parser(
        "annotate",
        help="track and name faces; annotated.mp4 + timeline.json",
        description="Follow faces through VIDEO, name each track from all its faces against a "
        "gallery (local file or the API), and write RUN/annotated.mp4 and RUN/timeline.json.",
    )
    p.add_argument("video", help="video file or URL")
    p.add_argument("--out", type=Path, required=True, help="run folder to write")
    _target_arguments(p)
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--every-frame", action="store_true", help="analyse every frame (default: about 10 per second)")
    rate.add_argument("--stride", type=int, default=None, help="analyse every Nth frame")
    p.add_argument(
        "--threshold", type=float, default=None, help="cosine threshold (default: the embedder's / the API's)"
    )
    p.add_argument(
        "--margin", type=float, default=0.02, help="lead the best identity needs over the runner-up (default 0.02)"
    )
    p.add_argument("--min-faces", type=int, default=3, help="faces a track needs before it is named (default 3)")
    _embedder_argument(p)
    p.set_defaults(handler=cmd_annotate)

    if importlib.util.find_spec("pipeline.evaluation.cli") is not None:
        evaluation = importlib.import_module("pipeline.evaluation.cli")
        p = sub.add_parser(
            "evaluate",
            help="accuracy of the embedder on a labelled face set",
            description="Verification and identification accuracy of the embedder.",
        )
        evaluation.add_evaluate_arguments(p)
        p.set_defaults(handler=lambda a: _evaluation("run_evaluate")(a))
        p = sub.add_parser(
            "calibrate",
            help="propose a threshold for a target false-accept rate",
            description="Propose a cosine threshold (FACE_THRESHOLD) from labelled faces.",
        )
        evaluation.add_calibrate_arguments(p)
        p.set_defaults(handler=lambda a: _evaluation("run_calibrate")(a))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.handler(args) or 0)
    except AnalysisError as exc:  # the CLI's own PipelineError, or the core's (an unreadable video)
        print(f"error: {exc}", file=sys.stderr)
        return PipelineError.exit_code
    except ApiError as exc:  # --api: the API refused, failed or could not be reached
        from .video.api import explain

        print(f"error: {explain(exc)}", file=sys.stderr)
        return PipelineError.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
