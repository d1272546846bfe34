"""Video pipeline throughput: ``run`` and ``annotate`` against the seed notebooks' naive loop.

The naive loop is what the seed notebooks did: each frame alone through facenet-pytorch's plain
``MTCNN(keep_all=True).detect``, then each face alone through the embedder. Ours decodes the next
batch while the current one is analysed, detects equal-size frames together (one MTCNN pass per
batch, our OpenCV cascade) and embeds all faces of a batch in shared forward passes.

* ``run``: extract + faces + cluster at the same sampling (``--every``) for both; ours also writes
  the JPEGs, crops and JSON files, the naive loop writes nothing. Plots are timed apart.
* ``annotate``: frames of video per second, from decoding to the written ``annotated.mp4``. Ours
  runs at its default stride (about 10 analysed frames per second; tracks carry the names across
  the skipped frames) and, outside ``--quick``, with ``--every-frame``; the naive loop recognises
  every frame alone (detect, embed, search, draw, write) and is timed on the first frames only.

Candidates alternate on one machine, one video after the other, with 2 torch threads each. The
machine may be shared with other work: compare ratios, not absolute rates.

    python -m benchmarks.bench_pipeline [--quick]
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmarks.timing import bench_main, machine
from tests.support.faces import faces_dir_path

THREADS = 2
TARGET = 3.0
VIDEOS = {"stage": "stage_640x360.mp4", "street": "street_1920x1080.mp4"}
# seconds between sampled frames for the run comparison, and frames of the naive annotate loop
PLAN_QUICK = {"every": 0.5, "rounds": 1, "naive_annotate_frames": {"stage": 24, "street": 8}, "every_frame": False}
PLAN_FULL = {"every": 0.1, "rounds": 3, "naive_annotate_frames": {"stage": 90, "street": 40}, "every_frame": True}


def _sampled_frames(path: Path, every: float):
    """Decoded RGB frames at the same times the pipeline's extract takes (the naive reader)."""
    from inference_service.analysis.source import probe, read_frames
    from pipeline.video.frames import sample_indices

    info = probe(path)
    wanted = sample_indices(info, 0.0, None, every)
    for _, frame in read_frames(path, set(wanted)):
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _naive_faces(mtcnn, engine, image: np.ndarray) -> list[tuple]:
    """One frame through plain MTCNN, then each face alone through the embedder."""
    from inference_service.engine import Face

    boxes, probs, points = mtcnn.detect(image, landmarks=True)
    out = []
    if boxes is None:
        return out
    for box, prob, landmarks in zip(boxes, probs, points):
        if prob < engine.detector.config.min_score:
            continue
        face = Face(tuple(float(v) for v in box), float(prob), np.asarray(landmarks, np.float64))
        out.append((face, engine.embed_faces(image, [face])[0]))
    return out


def naive_run(path: Path, every: float, mtcnn, engine) -> dict:
    from pipeline.video.clustering import cluster_labels

    torch.set_num_threads(THREADS)  # the seed loop's setting: intra-op threads, one image at a time
    start = time.perf_counter()
    frames, vectors = 0, []
    for image in _sampled_frames(path, every):
        frames += 1
        vectors += [vector for _, vector in _naive_faces(mtcnn, engine, image)]
    labels = cluster_labels(np.stack(vectors), engine.threshold) if vectors else []
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "frames": frames, "faces": len(vectors), "clusters": len(set(labels))}


def ours_run(path: Path, every: float, engine, folder: Path, plots: bool = True) -> dict:
    from pipeline.video.clustering import cluster_run
    from pipeline.video.faces import detect_faces
    from pipeline.video.frames import extract
    from pipeline.video.plots import make_plots

    engine.parallelize_images(THREADS)  # as `python -m pipeline` does: THREADS frames at once
    start = time.perf_counter()
    meta = extract(str(path), folder, every=every)
    faces = detect_faces(folder, engine)
    clusters = cluster_run(folder)
    elapsed = time.perf_counter() - start
    plots_start = time.perf_counter()
    if plots:
        make_plots(folder)
    return {
        "seconds": elapsed,
        "frames": len(meta["frames"]),
        "faces": len(faces["faces"]),
        "clusters": len(clusters["clusters"]),
        "plots_seconds": time.perf_counter() - plots_start,
    }


def naive_annotate(path: Path, frames: int, mtcnn, engine, gallery, out: Path) -> dict:
    from inference_service.analysis.source import probe, read_frames

    info = probe(path)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), info.fps, (info.width, info.height))
    torch.set_num_threads(THREADS)
    start = time.perf_counter()
    done = 0
    for _index, frame in read_frames(path, set(range(frames))):
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        for face, vector in _naive_faces(mtcnn, engine, rgb):
            found = gallery.search(vector[None], engine.threshold)[0]
            x1, y1, x2, y2 = (int(v) for v in face.box)
            cv2.rectangle(frame, (x1, y1), (x2, y2), (60, 200, 60), 2)
            cv2.putText(
                frame,
                found.identity or "unknown",
                (x1, max(12, y1 - 4)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.6,
                (60, 200, 60),
                2,
            )
        writer.write(frame)
        done += 1
    writer.release()
    return {"seconds": time.perf_counter() - start, "frames": done}


def ours_annotate(path: Path, gallery_path: Path, folder: Path, every_frame: bool) -> dict:
    from pipeline.video.annotate import annotate

    start = time.perf_counter()
    timeline = annotate(str(path), folder, gallery=gallery_path, stride=1 if every_frame else None)
    return {
        "seconds": time.perf_counter() - start,
        "frames": timeline["frames"],
        "stride": timeline["stride"],
        "named": sorted({t["identity"] for t in timeline["tracks"] if t["identity"]}),
    }


def build_gallery(engine, path: Path) -> None:
    from inference_service.engine import load_image, pick_largest
    from inference_service.gallery import Gallery

    gallery = Gallery.open(path, engine.embedder.name, engine.embedder.dim)
    for photo in sorted((faces_dir_path() / "gallery").glob("*/*")):
        image = load_image(photo.read_bytes())
        face = pick_largest(engine.detect(image))
        gallery.enroll(photo.parent.name, engine.embed_faces(image, [face]))
    gallery.close()


def _fps(samples: list[dict]) -> float:
    return round(statistics.median(s["frames"] / s["seconds"] for s in samples), 2)


def run(quick: bool = False) -> dict:
    """Frames per second of both pipelines per video; ``pipeline_speedup`` is the smaller of the
    two videos' run speedups."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ["FACE_EMBEDDER"] = "dlib-resnet"
    os.environ["FACE_THREADS"] = str(THREADS)
    import torch
    from facenet_pytorch import MTCNN

    from inference_service.config import Settings
    from inference_service.engine import FaceEngine
    from inference_service.gallery import Gallery

    plan = PLAN_QUICK if quick else PLAN_FULL
    engine = FaceEngine.from_settings(Settings(embedder="dlib-resnet", threads=THREADS, device="cpu"))
    torch.set_num_threads(THREADS)
    mtcnn = MTCNN(keep_all=True, device="cpu")
    videos = {name: faces_dir_path() / "video" / file for name, file in VIDEOS.items()}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        tmp_path = Path(tmp)
        gallery_path = tmp_path / "gallery.sqlite3"
        build_gallery(engine, gallery_path)
        gallery = Gallery.open(gallery_path, engine.embedder.name, engine.embedder.dim)
        # warm-up: first calls allocate buffers and load lazy modules
        warm = next(_sampled_frames(videos["stage"], 1.0))
        engine.analyze_batch([warm, warm])
        _naive_faces(mtcnn, engine, warm)
        for name, path in videos.items():
            ours, naive = [], []
            for k in range(plan["rounds"]):
                order = ("ours", "naive") if k % 2 == 0 else ("naive", "ours")
                for who in order:
                    if who == "ours":
                        ours.append(
                            ours_run(path, plan["every"], engine, tmp_path / f"{name}_run_{k}", plots=not quick)
                        )
                    else:
                        naive.append(naive_run(path, plan["every"], mtcnn, engine))
            ann_ours = ours_annotate(path, gallery_path, tmp_path / f"{name}_ann", every_frame=False)
            ann_naive = naive_annotate(
                path, plan["naive_annotate_frames"][name], mtcnn, engine, gallery, tmp_path / f"{name}_naive.mp4"
            )
            ann_every = (
                ours_annotate(path, gallery_path, tmp_path / f"{name}_ann1", every_frame=True)
                if plan["every_frame"]
                else None
            )
            row = {
                "video": name,
                "every": plan["every"],
                "frames": ours[0]["frames"],
                "faces_ours": ours[0]["faces"],
                "faces_naive": naive[0]["faces"],
                "clusters_ours": ours[0]["clusters"],
                "clusters_naive": naive[0]["clusters"],
                "run_fps_ours": _fps(ours),
                "run_fps_naive": _fps(naive),
                "plots_seconds": round(statistics.median(s["plots_seconds"] for s in ours), 2) if not quick else None,
                "annotate_fps_ours": _fps([ann_ours]),
                "annotate_stride": ann_ours["stride"],
                "annotate_named": ann_ours["named"],
                "annotate_fps_naive": _fps([ann_naive]),
                "annotate_naive_frames": ann_naive["frames"],
                "annotate_every_frame_fps_ours": _fps([ann_every]) if ann_every else None,
            }
            row["run_speedup"] = round(row["run_fps_ours"] / row["run_fps_naive"], 2)
            row["annotate_speedup"] = round(row["annotate_fps_ours"] / row["annotate_fps_naive"], 2)
            row["annotate_every_frame_speedup"] = (
                round(row["annotate_every_frame_fps_ours"] / row["annotate_fps_naive"], 2) if ann_every else None
            )
            rows.append(row)
        gallery.close()
    return {
        "quick": quick,
        "threads": THREADS,
        "videos": rows,
        "pipeline_speedup": min(r["run_speedup"] for r in rows),
        "annotate_speedup": min(r["annotate_speedup"] for r in rows),
        "target": TARGET,
        "machine": machine(),
    }


def markdown(result: dict) -> str:
    lines = [
        f"Video pipeline, frames per second (torch {result['threads']} threads; target: ours >= {result['target']:g}x naive)",
        "",
        "| video | step | frames | ours fps | naive fps | ours / naive | faces ours / naive | clusters ours / naive |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["videos"]:
        lines.append(
            f"| {r['video']} | run (every {r['every']:g} s) | {r['frames']} | {r['run_fps_ours']:.2f} | {r['run_fps_naive']:.2f} | "
            f"{r['run_speedup']:.2f}x | {r['faces_ours']} / {r['faces_naive']} | {r['clusters_ours']} / {r['clusters_naive']} |"
        )
        lines.append(
            f"| {r['video']} | annotate (stride {r['annotate_stride']}; naive: every frame, first {r['annotate_naive_frames']}) | "
            f"all | {r['annotate_fps_ours']:.2f} | {r['annotate_fps_naive']:.2f} | {r['annotate_speedup']:.2f}x | | |"
        )
        if r["annotate_every_frame_fps_ours"] is not None:
            lines.append(
                f"| {r['video']} | annotate --every-frame | all | {r['annotate_every_frame_fps_ours']:.2f} | "
                f"{r['annotate_fps_naive']:.2f} | {r['annotate_every_frame_speedup']:.2f}x | | |"
            )
    lines += [
        "",
        f"pipeline_speedup (smallest run ratio): {result['pipeline_speedup']:.2f}x; "
        f"annotate_speedup (smallest): {result['annotate_speedup']:.2f}x. Plots (apart): "
        + ", ".join(
            f"{r['video']} {r['plots_seconds']:.1f} s"
            if r["plots_seconds"] is not None
            else f"{r['video']} not timed (quick)"
            for r in result["videos"]
        )
        + ". Named in annotate: "
        + "; ".join(f"{r['video']}: {', '.join(r['annotate_named']) or 'nobody'}" for r in result["videos"]),
    ]
    return "\n".join(lines)


def main() -> None:
    bench_main(__doc__, run, markdown, quick_help="sparser sampling, no --every-frame pass")


if __name__ == "__main__":
    main()
