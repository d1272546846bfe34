"""Peak memory (RSS) of a fresh process with detector + embedder loaded and one 1080p photo processed.

A fresh subprocess, so nothing this benchmark runner loaded before counts: it imports the engine,
loads MTCNN and dlib-resnet, detects and embeds the faces of ``resolution/obama_1080p.jpg`` and
reports its RSS after each step and its peak (``VmHWM``). Target: peak below 1200 MB.

    python -m benchmarks.bench_memory [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.timing import machine, machine_line

REPO = Path(__file__).resolve().parents[1]
TARGET_MB = 1200.0


def _status_mb(field: str = "VmRSS") -> float:
    """A memory line of /proc/self/status in MB (VmRSS: now; VmHWM: the peak so far)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child() -> None:
    """Runs in the fresh process: load, process one photo, print the figures as JSON."""
    steps = {"started": _status_mb()}
    from inference_service.config import Settings
    from inference_service.engine import FaceEngine, load_image
    from tests.support.faces import faces_dir_path

    steps["imported"] = _status_mb()
    engine = FaceEngine.from_settings(Settings(embedder="dlib-resnet", threads=2, device="cpu"))
    steps["models_loaded"] = _status_mb()
    image = load_image((faces_dir_path() / "resolution" / "obama_1080p.jpg").read_bytes())
    faces = engine.analyze(image)
    steps["photo_processed"] = _status_mb()
    import torch

    print(
        json.dumps(
            {
                "rss_mb": {k: round(v, 1) for k, v in steps.items()},
                "peak_rss_mb": round(_status_mb("VmHWM"), 1),
                "faces": len(faces),
                "embedder": engine.embedder.name,
                "torch": torch.__version__,
            }
        )
    )


def run(quick: bool = False) -> dict:
    """Start the child process and return what it measured (``quick`` changes nothing: one run)."""
    env = {**os.environ, "FACE_THREADS": "2", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_memory", "--child"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["target_mb"] = TARGET_MB
    return result


def markdown(result: dict) -> str:
    steps = result["rss_mb"]
    lines = [
        f"Memory of a fresh process ({result['embedder']} + MTCNN, one 1080p photo, {result['faces']} face(s); "
        f"torch {result['torch']})",
        "",
        "| step | RSS MB |",
        "| --- | ---: |",
        *(f"| {step.replace('_', ' ')} | {mb:.1f} |" for step, mb in steps.items()),
        f"| **peak** (target < {result['target_mb']:.0f}) | **{result['peak_rss_mb']:.1f}** |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="accepted for symmetry; the run is already short")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child()
        return
    print(machine_line(machine()))
    print()
    print(markdown(run(quick=args.quick)))


if __name__ == "__main__":
    main()
