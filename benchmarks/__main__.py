"""Run every benchmark and write ``benchmarks/results/latest.json``: ``python -m benchmarks [--quick]``.

Each ``benchmarks/bench_*.py`` module exposes ``run(quick) -> dict`` (and ``markdown(result)``);
they are imported one at a time when their turn comes, so a missing or failing one is recorded
in the JSON with its error and the others still run (the exit status then says something failed).
The closing table holds the ratios and figures, each measured side by side within this one run,
with the machine they ran on. ``--quick`` (fewer rounds) finishes in about two minutes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.timing import machine, machine_line
from inference_service.atomic import write_json

RESULTS = Path(__file__).resolve().parent / "results"
MODULES = ("detect", "embed", "memory", "peer", "pipeline", "http", "web", "gallery", "replicas", "video", "live")

# figure -> (module, what it is, target); the figures latest.json must hold.
FIGURES: dict[str, tuple[str, str, str]] = {
    "detect_ratio_1080p": ("detect", "detection 1920x1080, ours / plain MTCNN", "<= 0.6"),
    "detect_ratio_4000x3000": ("detect", "detection 4000x3000, ours / plain MTCNN", "<= 0.25"),
    "embed_batch_speedup": ("embed", "dlib-resnet faces/s, batch 32 / one at a time", ""),
    "dlib_faces_per_s_b32": ("embed", "dlib-resnet faces/s at batch 32", ">= 60"),
    "peak_rss_mb": ("memory", "peak RSS MB, detector + embedder + one 1080p photo", "< 1200"),
    "peer_time_ratio": ("peer", "recognition time, ours / face_recognition (same photos)", ""),
    "pipeline_speedup": ("pipeline", "video pipeline, ours / naive seed loop (speed)", ">= 3"),
    "http_overhead_ratio": ("http", "/recognize p50, HTTP / in-process", "<= 1.15"),
    "concurrency_throughput_ratio": ("http", "throughput, 8 clients / sequential", ">= 0.9"),
    "search_ms_100k": ("gallery", "gallery search ms per face, 100k faces", "<= 3.2"),
    "search_ms_1m": ("http", "gallery search ms, 1M faces", ""),
    "rss_mb": ("http", "API process RSS MB after 1000 requests", ""),
    "rss_growth": ("http", "API RSS after 1000 / after 200 requests", "<= 1.10"),
    "web_overhead_ratio": ("web", "site / API time for one photo", "<= 1.2"),
    "replica_lag_ms_p99": ("replicas", "ms from a 201 on one API replica until two others list it, p99", "<= 1000"),
    "video_job_ratio": ("video", "video job time / `python -m pipeline annotate` wall time, stage clip", "<= 1.2"),
    "recognize_p50_during_video_ratio": ("video", "/recognize p50 while a video job runs / idle", "<= 2.0"),
    "enroll_ms_1m": ("gallery", "enroll 3 faces into a 1M-face SQLite gallery, ms", "<= 20"),
    "delete_ms_1m": ("gallery", "delete a 100-face identity from 1M faces, ms", "<= 50"),
    "gallery_ram_ratio_1m": ("gallery", "index arrays / raw float32 vectors, 1M faces", "<= 1.3"),
    "startup_s_1m": ("gallery", "Gallery start-up from a 1M-face SQLite file, s", "<= 3"),
    "startup_s_1m_postgres": ("gallery", "Gallery start-up from 1M faces in PostgreSQL, s", "<= 3"),
    "rename_ms_1m": ("gallery", "rename a 100-face identity in a 1M-face SQLite gallery, ms", "<= 20"),
    "merge_ms_1m": ("gallery", "merge a 100-face identity into another, 1M faces, ms", "<= 50"),
    "move_ms_1m": ("gallery", "move one face to another identity, 1M faces, ms", "<= 20"),
    "report_s_10k_identities": ("gallery", "gallery report over 10,000 identities of 10 faces, s", "<= 2"),
    "ws_roundtrip_ms_p95": ("live", "WebSocket /live round trip, 640x360 frames, p95 ms", "<= 200"),
    "live_name_flips": ("live", "decided track names that changed, stage clip over /live", "0"),
    "live_analysed_fps_720p": ("live", "frames analysed per s, one 25 fps 1280x720 RTSP camera", ">= 8"),
    "recognize_p50_during_live_ratio": ("live", "/recognize p50 while a 720p camera is watched / idle", "<= 2.0"),
}
REQUIRED = (
    "detect_ratio_1080p",
    "detect_ratio_4000x3000",
    "embed_batch_speedup",
    "http_overhead_ratio",
    "concurrency_throughput_ratio",
    "pipeline_speedup",
    "search_ms_100k",
    "search_ms_1m",
    "rss_mb",
    "rss_growth",
    "enroll_ms_1m",
    "delete_ms_1m",
    "gallery_ram_ratio_1m",
    "startup_s_1m",
)


def run_module(name: str, quick: bool) -> tuple[dict, str | None, float]:
    """(result, error, seconds) of ``benchmarks.bench_<name>.run``; never raises."""
    start = time.perf_counter()
    try:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        result = module.run(quick=quick)
        text = module.markdown(result) if hasattr(module, "markdown") else json.dumps(result, indent=2, default=str)
        print(f"\n### {name}\n\n{text}", flush=True)
        return result, None, time.perf_counter() - start
    except Exception as exc:  # a broken benchmark is a result to record, not the end of the run
        error = f"{type(exc).__name__}: {exc}"
        print(f"\n### {name}\n\nFAILED: {error}", flush=True)
        traceback.print_exc(file=sys.stderr)
        return {}, error, time.perf_counter() - start


def _fmt(value) -> str:
    if value is None:
        return "missing"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != 0 and abs(value) < 0.01:
            return f"{value:.2g}"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def summary_table(report: dict) -> str:
    lines = [
        machine_line(report["machine"]),
        f"Run {report['started']}, {'quick' if report['quick'] else 'full'}, {report['seconds']:.0f} s",
        "",
        "| figure | value | target | what |",
        "| --- | ---: | ---: | --- |",
    ]
    for key, (module, what, target) in FIGURES.items():
        value = report.get(key)
        if value is None and report["errors"].get(module):
            shown = "error"
        elif value is None and report["modules"].get(module, {}).get("skipped"):
            shown = "skipped"
        elif value is None and key in report["modules"].get(module, {}):
            shown = "not measured" + (" (quick)" if report["quick"] else "")
        else:
            shown = _fmt(value)
        lines.append(f"| `{key}` | {shown} | {target} | {what} |")
    for module, error in report["errors"].items():
        lines.append(f"\n{module}: {error}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds: about two minutes in all")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(MODULES)}")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json", help="where to write the JSON")
    parser.add_argument("--postgres", help="postgresql://... : the gallery benchmark measures that store too")
    args = parser.parse_args(argv)
    if args.postgres:
        os.environ["FACE_BENCH_POSTGRES"] = args.postgres
    chosen = [m.strip() for m in args.only.split(",")] if args.only else list(MODULES)
    unknown = [m for m in chosen if m not in MODULES]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")

    started = time.perf_counter()
    report: dict = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "modules": {},
        "errors": {},
        "module_seconds": {},
    }
    for name in chosen:
        result, error, seconds = run_module(name, args.quick)
        report["modules"][name] = result
        report["module_seconds"][name] = round(seconds, 1)
        if error:
            report["errors"][name] = error
        for key, (module, _, _) in FIGURES.items():
            if module == name and key in result:
                report[key] = result[key]
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["machine"]["torch_threads_end"] = machine()["torch_threads"]
    # A figure is missing when its module did not return it; a module may return None on purpose
    # (e.g. a measurement too slow for --quick), which is recorded but not a failure.
    missing = [k for k in REQUIRED if FIGURES[k][0] in chosen and k not in report["modules"].get(FIGURES[k][0], {})]
    report["missing"] = missing
    report["not_measured"] = [k for k in FIGURES if FIGURES[k][0] in chosen and k in report and report[k] is None]

    write_json(args.out, report, indent=2, default=str)

    print("\n## Benchmarks\n")
    print(summary_table(report))
    print(f"\nWrote {args.out}")
    if report["errors"] or missing:
        print(f"FAILED: errors in {sorted(report['errors'])}, missing figures {missing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
