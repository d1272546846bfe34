"""Embedding throughput (faces/s) per batch size and per embedder, against one face at a time.

The faces are real: detected and cropped (aligned 150x150 chips for dlib-resnet, 160x160 box
crops for FaceNet) from ../shared/faces photos, repeated to fill the batches. InceptionResnetV1
runs with random weights (its speed does not depend on them and the pretrained file cannot be
downloaded here). Batch sizes 1, 8 and 32 are timed in interleaved rounds with 2 torch threads;
``embed_batch_speedup`` = dlib-resnet faces/s at batch 32 / at batch 1.

    python -m benchmarks.bench_embed [--quick]
"""

from __future__ import annotations

import numpy as np

from benchmarks.timing import bench_main, interleaved
from tests.support.faces import faces_dir_path

THREADS = 2
BATCH_SIZES = (1, 8, 32)
PHOTOS = ("multi/six_faces.jpg", "multi/obama_biden_1.jpg", "multi/kit_rose.jpg", "gallery/biden/1.jpg")
TARGET_DLIB_B32 = 60.0


def real_faces(engine) -> list[tuple[np.ndarray, list]]:
    """(image, faces) of a few photos: about ten distinct real faces."""
    from inference_service.engine import load_image

    root = faces_dir_path()
    out = []
    for rel in PHOTOS:
        image = load_image((root / rel).read_bytes())
        out.append((image, engine.detect(image)))
    return out


def chips_for(embedder, photos: list[tuple[np.ndarray, list]], count: int) -> np.ndarray:
    """``count`` chips in the embedder's own crop, the real faces repeated."""
    chips = np.concatenate([embedder.crops(image, faces) for image, faces in photos if faces])
    return chips[np.arange(count) % len(chips)]


def measure(embedder, chips: np.ndarray, rounds: int) -> dict:
    """faces/s per batch size, the sizes interleaved round by round (after a short warm-up)."""

    def at(batch: int):
        def go() -> None:
            embedder.batch_size = batch
            embedder.embed(chips)

        return go

    original = embedder.batch_size
    try:
        for batch in BATCH_SIZES:  # first calls allocate; keep them out of the timing
            embedder.batch_size = batch
            embedder.embed(chips[:batch])
        times = interleaved({str(b): at(b) for b in BATCH_SIZES}, rounds=rounds, warmup=0)
    finally:
        embedder.batch_size = original
    return {int(b): round(len(chips) / float(np.median(t)), 1) for b, t in times.items()}


def run(quick: bool = False) -> dict:
    import torch
    from facenet_pytorch import InceptionResnetV1

    from inference_service.config import Settings
    from inference_service.engine import FaceEngine
    from inference_service.engine.embedders.facenet import FaceNetEmbedder

    torch.set_num_threads(THREADS)
    engine = FaceEngine.from_settings(Settings(embedder="dlib-resnet", threads=THREADS, device="cpu"))
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    # Random weights under the VGGFace2 model's name: its speed does not depend on them.
    facenet = FaceNetEmbedder("vggface2", InceptionResnetV1(pretrained=None), torch.device("cpu"))
    photos = real_faces(engine)
    count = 32 if quick else 64
    # InceptionResnetV1 is ~5x slower per face than dlib-resnet: fewer rounds keep the run short.
    rounds = {"dlib-resnet": 2, "facenet": 1} if quick else {"dlib-resnet": 5, "facenet": 2}

    result: dict = {"threads": THREADS, "faces_per_run": count, "embedders": {}}
    for name, embedder, key in (
        ("dlib-resnet", engine.embedder, "dlib-resnet"),
        ("InceptionResnetV1 (random weights)", facenet, "facenet"),
    ):
        chips = chips_for(embedder, photos, count)
        fps = measure(embedder, chips, rounds[key])
        result["embedders"][name] = {
            "rounds": rounds[key],
            "input": f"{chips.shape[1]}x{chips.shape[2]}",
            "dim": embedder.dim,
            "faces_per_s": fps,
            "speedup_b32": round(fps[32] / fps[1], 2),
        }
    dlib = result["embedders"]["dlib-resnet"]
    result["embed_batch_speedup"] = dlib["speedup_b32"]
    result["dlib_faces_per_s_b32"] = dlib["faces_per_s"][32]
    result["facenet_faces_per_s_b32"] = result["embedders"]["InceptionResnetV1 (random weights)"]["faces_per_s"][32]
    return result


def markdown(result: dict) -> str:
    lines = [
        f"Embedding, faces/s (median of interleaved rounds of {result['faces_per_run']} faces, "
        f"torch {result['threads']} threads)",
        "",
        "| embedder | input | rounds | "
        + " | ".join(f"batch {b}" for b in BATCH_SIZES)
        + " | batch 32 / one at a time |",
        "| --- | --- | ---: | " + " | ".join("---:" for _ in BATCH_SIZES) + " | ---: |",
    ]
    for name, row in result["embedders"].items():
        lines.append(
            f"| {name} | {row['input']} | {row['rounds']} | "
            + " | ".join(f"{row['faces_per_s'][b]:.1f}" for b in BATCH_SIZES)
            + f" | {row['speedup_b32']:.2f}x |"
        )
    lines.append("")
    lines.append(
        f"dlib-resnet at batch 32: {result['dlib_faces_per_s_b32']:.1f} faces/s (target >= {TARGET_DLIB_B32:.0f})"
    )
    return "\n".join(lines)


def main() -> None:
    bench_main(__doc__, run, markdown, quick_help="32 faces, fewer rounds")


if __name__ == "__main__":
    main()
