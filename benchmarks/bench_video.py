"""Video jobs in the API: their speed against the CLI, and what they cost photo requests.

Starts the real API (dlib-resnet, ``FACE_THREADS=2``, the defaults otherwise) with Lin-Manuel
Miranda enrolled, and on the stage clip of ``FACES_DIR`` measures, interleaved:

- ``video_job_ratio``: a job's time (``POST /videos`` until ``GET`` says done, polled every
  0.1 s) / the wall time of ``python -m pipeline annotate VIDEO --gallery FILE`` (a subprocess,
  so it includes the interpreter's and the models' start-up, a few seconds: printed apart as
  ``cli_startup_s``, the time of ``python -m pipeline annotate`` on a video of two frames);
  target <= 1.2. The job writes H.264 (x264) where the CLI writes mp4v, and keeps each track's
  best faces.
- ``recognize_p50_during_video_ratio``: ``/recognize`` p50 on a 1280x720 photo while a job runs
  / idle, sequential requests; target <= 2.0.

    python -m benchmarks.bench_video [--quick]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import requests

from benchmarks.timing import bench_main, machine
from tests.support.faces import faces_dir_path
from tests.support.live_servers import REPO, clean_env, start_api

MIRANDA = "lin_manuel_miranda"
THREADS = "2"


def _enroll_cli_gallery(path: Path, photo: Path) -> None:
    """A gallery file for the CLI with the same face the API enrolled (same engine settings)."""
    from inference_service.config import Settings
    from inference_service.engine import FaceEngine, load_image, pick_largest
    from inference_service.gallery import Gallery

    engine = FaceEngine.from_settings(Settings(embedder="dlib-resnet", threads=int(THREADS)))
    image = load_image(photo.read_bytes(), 40_000_000)
    face = pick_largest(engine.detect(image))
    gallery = Gallery.open(path, engine.embedder.name, engine.embedder.dim)
    gallery.enroll(MIRANDA, engine.embed_faces(image, [face]), [face.box])
    gallery.close()


def _cli_seconds(video: Path, gallery: Path, out: Path) -> float:
    env = clean_env(FACE_EMBEDDER="dlib-resnet", FACE_THREADS=THREADS)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "annotate", str(video), "--gallery", str(gallery), "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"pipeline annotate failed: {done.stderr[-800:]}")
    return seconds


def _submit(api_url: str, video: Path) -> str:
    with open(video, "rb") as fh:
        r = requests.post(f"{api_url}/videos", files={"video": (video.name, fh, "video/mp4")}, timeout=120)
    r.raise_for_status()
    return r.json()["id"]


def _job(api_url: str, job_id: str) -> dict:
    return requests.get(f"{api_url}/videos/{job_id}", timeout=30).json()


def _job_seconds(api_url: str, video: Path) -> float:
    started = time.perf_counter()
    job_id = _submit(api_url, video)
    while (status := _job(api_url, job_id)["status"]) in ("queued", "running"):
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    if status != "done":
        raise RuntimeError(f"video job ended {status}")
    requests.delete(f"{api_url}/videos/{job_id}", timeout=60)
    return seconds


def _recognize_s(api_url: str, photo: bytes) -> float:
    started = time.perf_counter()
    r = requests.post(f"{api_url}/recognize", files={"image": ("p.jpg", photo, "image/jpeg")}, timeout=120)
    r.raise_for_status()
    return time.perf_counter() - started


def _during_job(api_url: str, video: Path, photo: bytes, count: int) -> list[float]:
    """``count`` sequential /recognize times, each while a job is analysing (new jobs as needed)."""
    samples: list[float] = []
    while len(samples) < count:
        job_id = _submit(api_url, video)
        while True:
            job = _job(api_url, job_id)
            if job["status"] == "running" and job["progress"]["frames_done"] > 0:
                break
            time.sleep(0.05)
        while len(samples) < count:
            t = _recognize_s(api_url, photo)
            job = _job(api_url, job_id)
            if job["status"] != "running":
                break  # the job ended during this request: it does not count
            samples.append(t)
        requests.delete(f"{api_url}/videos/{job_id}", timeout=60)
    return samples


def _two_frame_clip(video: Path, out: Path) -> Path:
    capture = cv2.VideoCapture(str(video))
    frames = [capture.read()[1] for _ in range(2)]
    capture.release()
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 29.97, (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return out


def run(quick: bool = False) -> dict:
    faces = faces_dir_path()
    video = faces / "video" / "stage_640x360.mp4"
    photo = (faces / "resolution" / "obama_720p.jpg").read_bytes()
    rounds = 1 if quick else 2
    requests_per_phase = 8 if quick else 20
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cli_gallery = folder / "cli-gallery.sqlite3"
        _enroll_cli_gallery(cli_gallery, faces / "gallery" / MIRANDA / "1.png")
        tiny = _two_frame_clip(video, folder / "two.mp4")
        api = start_api(folder, folder / "api-gallery.sqlite3", FACE_THREADS=THREADS)
        try:
            with open(faces / "gallery" / MIRANDA / "1.png", "rb") as fh:
                requests.post(
                    f"{api.url}/identities/{MIRANDA}/faces", files={"image": fh}, timeout=120
                ).raise_for_status()
            startup = _cli_seconds(tiny, cli_gallery, folder / "cli-tiny")
            cli, job = [], []
            for k in range(rounds):
                cli.append(_cli_seconds(video, cli_gallery, folder / f"cli-{k}"))
                job.append(_job_seconds(api.url, video))
            for _ in range(2):  # warm-up
                _recognize_s(api.url, photo)
            idle = [_recognize_s(api.url, photo) for _ in range(requests_per_phase)]
            during = _during_job(api.url, video, photo, requests_per_phase)
            idle += [_recognize_s(api.url, photo) for _ in range(requests_per_phase)]
        finally:
            api.stop()
    cli_s, job_s = statistics.median(cli), statistics.median(job)
    idle_p50, during_p50 = statistics.median(idle) * 1000, statistics.median(during) * 1000
    return {
        "machine": machine(),
        "rounds": rounds,
        "cli_seconds": [round(v, 2) for v in cli],
        "job_seconds": [round(v, 2) for v in job],
        "cli_startup_s": round(startup, 2),
        "video_job_ratio": round(job_s / cli_s, 3),
        "video_job_ratio_without_cli_startup": round(job_s / max(cli_s - startup, 1e-6), 3),
        "recognize_idle_p50_ms": round(idle_p50, 1),
        "recognize_during_video_p50_ms": round(during_p50, 1),
        "recognize_during_video_p95_ms": round(float(np.percentile(during, 95)) * 1000, 1),
        "recognize_p50_during_video_ratio": round(during_p50 / idle_p50, 3),
    }


def markdown(result: dict) -> str:
    return "\n".join(
        [
            "| figure | value | target |",
            "| --- | ---: | ---: |",
            f"| video job (s, each round) | {', '.join(f'{v:.1f}' for v in result['job_seconds'])} | |",
            f"| `python -m pipeline annotate` wall (s, each round) | {', '.join(f'{v:.1f}' for v in result['cli_seconds'])} | |",
            f"| CLI start-up (2-frame clip, s) | {result['cli_startup_s']:.1f} | |",
            f"| video_job_ratio (job / CLI wall) | {result['video_job_ratio']:.3f} | <= 1.2 |",
            f"| job / (CLI wall - CLI start-up) | {result['video_job_ratio_without_cli_startup']:.3f} | |",
            f"| /recognize 1280x720 p50 idle / during a job (ms) | {result['recognize_idle_p50_ms']:.0f} / {result['recognize_during_video_p50_ms']:.0f} (p95 {result['recognize_during_video_p95_ms']:.0f}) | |",
            f"| recognize_p50_during_video_ratio | {result['recognize_p50_during_video_ratio']:.3f} | <= 2.0 |",
        ]
    )


if __name__ == "__main__":
    bench_main(__doc__, run, markdown, "one round and 8 requests per phase instead of 2 and 20")
