"""The CUDA path (``FACE_DEVICE=cuda``): speed on the GPU and agreement with the CPU.

Runs only where torch sees a CUDA device (it reports ``skipped`` elsewhere, e.g. on our CI
machine). The same engine is loaded twice, on the CPU and on the GPU, and both see the same
photos: detection time per image size (ours on CUDA against plain facenet-pytorch ``MTCNN`` on
CUDA, as ``bench_detect`` does on the CPU), whether the GPU finds the same faces as the CPU, how
close the GPU's embeddings of the same faces are to the CPU's (cosine), and embedding throughput
per batch size for dlib-resnet and InceptionResnetV1 (random weights: its speed does not depend
on them). GPU times are taken after ``torch.cuda.synchronize()``. Then ``gpu_photos_per_s_1080p``:
16 clients recognising 1080p photos at once, with shared batched passes and without
(``benchmarks/gpu_clients.py``).

    FACE_DEVICE=cuda python -m benchmarks.bench_cuda [--quick]
"""

from __future__ import annotations

import numpy as np

from benchmarks.bench_detect import load_images, same_faces
from benchmarks.bench_embed import chips_for, real_faces
from benchmarks.gpu_clients import measure as measure_clients
from benchmarks.timing import bench_main, interleaved, median_ms

BATCH_SIZES = (1, 32, 128)


def _synchronized(fn, torch):
    def call() -> None:
        fn()
        torch.cuda.synchronize()

    return call


def _embed_rates(embedder, chips: np.ndarray, rounds: int, torch) -> dict[int, float]:
    """Faces/s per batch size on the GPU, the sizes interleaved round by round."""

    def at(batch: int):
        def go() -> None:
            embedder.batch_size = batch
            embedder.embed(chips)
            torch.cuda.synchronize()

        return go

    original = embedder.batch_size
    try:
        times = interleaved({str(b): at(b) for b in BATCH_SIZES}, rounds=rounds, warmup=1)
    finally:
        embedder.batch_size = original
    return {int(b): round(len(chips) / float(np.median(t)), 1) for b, t in times.items()}


def run(quick: bool = False) -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"skipped": "torch sees no CUDA device"}
    from facenet_pytorch import MTCNN, InceptionResnetV1

    from inference_service.config import Settings
    from inference_service.engine import FaceEngine
    from inference_service.engine.embedders.facenet import FaceNetEmbedder

    cpu = FaceEngine.from_settings(Settings(embedder="dlib-resnet", device="cpu"))
    gpu = FaceEngine.from_settings(Settings(embedder="dlib-resnet", device="cuda"))
    plain = MTCNN(keep_all=True, device="cuda")
    rounds = 5 if quick else 20

    rows = []
    for size, image in load_images().items():
        last: dict = {}

        def ours(image=image) -> None:
            last["ours"] = gpu.detect(image)

        def theirs(image=image) -> None:
            last["plain"] = plain.detect(image)

        with torch.inference_mode():
            times = interleaved(
                {"ours": _synchronized(ours, torch), "plain": _synchronized(theirs, torch)}, rounds=rounds, warmup=2
            )
            cpu_faces = cpu.detect(image)
        same_plain, n_ours, n_plain = same_faces(last["ours"], *last["plain"], gpu.detector.config.min_score)
        boxes = np.array([f.box for f in cpu_faces]) if cpu_faces else None
        probs = [f.score for f in cpu_faces]
        same_cpu, _, n_cpu = same_faces(last["ours"], boxes, probs, 0.0)
        rows.append(
            {
                "size": size,
                "ours_ms": median_ms(times["ours"]),
                "plain_ms": median_ms(times["plain"]),
                "ratio": round(median_ms(times["ours"]) / median_ms(times["plain"]), 3),
                "faces_gpu": n_ours,
                "faces_cpu": n_cpu,
                "faces_plain": n_plain,
                "same_faces_as_cpu": same_cpu,
                "same_faces_as_plain": same_plain,
            }
        )

    with torch.inference_mode():
        photos = real_faces(cpu)
        chips = chips_for(cpu.embedder, photos, 256 if not quick else 64)
        on_cpu = cpu.embedder.embed(chips[:32])
        on_gpu = gpu.embedder.embed(chips[:32])
        cosine = np.sum(on_cpu * on_gpu, axis=1) / (np.linalg.norm(on_cpu, axis=1) * np.linalg.norm(on_gpu, axis=1))
        dlib_rates = _embed_rates(gpu.embedder, chips, max(3, rounds // 4), torch)
        facenet = FaceNetEmbedder("vggface2", InceptionResnetV1(pretrained=None), torch.device("cuda"))
        facenet_chips = chips_for(facenet, photos, len(chips))
        facenet_rates = _embed_rates(facenet, facenet_chips, max(3, rounds // 4), torch)
        image = load_images()["1080p"]
        analyze = interleaved(
            {"cpu": lambda: cpu.analyze(image), "gpu": _synchronized(lambda: gpu.analyze(image), torch)},
            rounds=max(3, rounds // 2),
            warmup=1,
        )

    clients = measure_clients(gpu, load_images()["1080p"], seconds=3.0 if quick else 10.0, rounds=1 if quick else 3)

    return {
        "gpu": torch.cuda.get_device_name(0),
        "gpu_photos_per_s_1080p": clients["shared"]["photos_per_s"],
        "gpu_p95_ms_1080p": clients["shared"]["p95_ms"],
        "clients_1080p": clients,
        "torch": torch.__version__,
        "detect": rows,
        "embedding_cosine_gpu_vs_cpu_min": round(float(cosine.min()), 6),
        "dlib_faces_per_s": dlib_rates,
        "facenet_faces_per_s": facenet_rates,
        "analyze_1080p_ms": {"cpu": median_ms(analyze["cpu"]), "gpu": median_ms(analyze["gpu"])},
        "same_faces_as_cpu": all(row["same_faces_as_cpu"] for row in rows),
    }


def markdown(result: dict) -> str:
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    lines = [
        f"CUDA path on {result['gpu']} (torch {result['torch']})",
        "",
        "| image | ours ms (GPU) | plain MTCNN ms (GPU) | ours / plain | faces GPU / CPU / plain | same faces as CPU |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in result["detect"]:
        lines.append(
            f"| {row['size']} | {row['ours_ms']:.1f} | {row['plain_ms']:.1f} | {row['ratio']:.3f} | "
            f"{row['faces_gpu']} / {row['faces_cpu']} / {row['faces_plain']} | "
            f"{'yes' if row['same_faces_as_cpu'] else 'NO'} |"
        )
    lines += [
        "",
        f"Embeddings, GPU vs CPU, lowest cosine over 32 faces: {result['embedding_cosine_gpu_vs_cpu_min']}",
        f"dlib-resnet faces/s by batch size: {result['dlib_faces_per_s']}",
        f"InceptionResnetV1 faces/s by batch size: {result['facenet_faces_per_s']}",
        f"detect + embed one 1080p photo, ms: {result['analyze_1080p_ms']}",
        "",
        "16 clients recognising 1080p photos (detect + embed + search), one GPU:",
        "",
        "| passes | photos/s | p50 ms | p95 ms |",
        "| --- | ---: | ---: | ---: |",
    ]
    for mode, row in result["clients_1080p"].items():
        lines.append(f"| {mode} | {row['photos_per_s']} | {row['p50_ms']} | {row['p95_ms']} |")
    lines += [
        "",
        f"gpu_photos_per_s_1080p {result['gpu_photos_per_s_1080p']} (p95 {result['gpu_p95_ms_1080p']} ms)",
    ]
    return "\n".join(lines)


def main() -> None:
    bench_main(__doc__, run, markdown, quick_help="fewer rounds", json_name="cuda")


if __name__ == "__main__":
    main()
