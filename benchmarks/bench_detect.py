"""Face detection time per image size: our MTCNN cascade against plain facenet-pytorch MTCNN.

Both run the same trained P/R/O-nets; ours builds the pyramid with OpenCV, crops candidates with
OpenCV's bilinear resize into one batch and detects large photos on a downscaled copy (inference_service/engine/detection.py).
Images: ``../shared/faces/resolution`` (240p .. 1080p) plus a 4000x3000 upscale of the 1080p
photo (scaled to cover, centre-cropped: real pixels, no stretching). Both detectors run in
interleaved rounds with ``torch.set_num_threads(2)``; the figure is the ratio of medians, and each
size also checks that both found the same faces (IoU >= 0.5, plain faces at our score cut-off).

    python -m benchmarks.bench_detect [--quick]
"""

from __future__ import annotations

import cv2
import numpy as np

from benchmarks.timing import bench_main, interleaved, median_ms
from tests.support.faces import faces_dir_path

THREADS = 2
SIZES = ("240p", "480p", "720p", "1080p")
TARGETS = {"1080p": 0.6, "4000x3000": 0.25}


def upscale_cover(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale ``image`` to cover width x height, then crop the centre: a big photo of real content."""
    scale = max(width / image.shape[1], height / image.shape[0])
    big = cv2.resize(
        image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_CUBIC
    )
    y = (big.shape[0] - height) // 2
    x = (big.shape[1] - width) // 2
    return np.ascontiguousarray(big[y : y + height, x : x + width])


def load_images() -> dict[str, np.ndarray]:
    from inference_service.engine import load_image

    root = faces_dir_path() / "resolution"
    images = {size: load_image((root / f"obama_{size}.jpg").read_bytes()) for size in SIZES}
    images["4000x3000"] = upscale_cover(images["1080p"], 4000, 3000)
    return images


def same_faces(ours: list, plain_boxes, plain_probs, min_score: float) -> tuple[bool, int, int]:
    """Whether both detectors found the same faces: a one-to-one IoU >= 0.5 matching."""
    from inference_service.engine import iou

    theirs = [] if plain_boxes is None else [b for b, p in zip(plain_boxes, plain_probs) if p >= min_score]
    unmatched = [f.box for f in ours]
    for box in theirs:
        best = max(range(len(unmatched)), key=lambda k: iou(unmatched[k], box), default=None)
        if best is None or iou(unmatched[best], box) < 0.5:
            return False, len(ours), len(theirs)
        unmatched.pop(best)
    return not unmatched, len(ours), len(theirs)


def run(quick: bool = False) -> dict:
    """Median ms per image for both detectors, their ratio per size, and the same-faces check."""
    import torch
    from facenet_pytorch import MTCNN

    from inference_service.config import Settings
    from inference_service.engine import FaceEngine

    torch.set_num_threads(THREADS)
    settings = Settings(embedder="dlib-resnet", threads=THREADS, device="cpu")
    engine = FaceEngine.from_settings(settings)
    torch.set_num_threads(THREADS)
    plain = MTCNN(keep_all=True, device="cpu")
    images = load_images()
    # (rounds, warm-up calls) per size; plain MTCNN takes seconds on 4000x3000, so few rounds there.
    plan = (
        {"240p": (3, 1), "480p": (3, 1), "720p": (3, 1), "1080p": (3, 1), "4000x3000": (2, 0)}
        if quick
        else {"240p": (15, 2), "480p": (11, 1), "720p": (9, 1), "1080p": (9, 1), "4000x3000": (5, 1)}
    )

    rows = []
    for size, image in images.items():
        last: dict = {}

        def ours() -> None:
            last["ours"] = engine.detect(image)

        def theirs() -> None:
            last["plain"] = plain.detect(image)

        with torch.inference_mode():
            times = interleaved({"ours": ours, "plain": theirs}, rounds=plan[size][0], warmup=plan[size][1])
        same, n_ours, n_plain = same_faces(last["ours"], *last["plain"], settings.min_score)
        ours_ms, plain_ms = median_ms(times["ours"]), median_ms(times["plain"])
        rows.append(
            {
                "size": size,
                "width": image.shape[1],
                "height": image.shape[0],
                "rounds": plan[size][0],
                "ours_ms": ours_ms,
                "plain_ms": plain_ms,
                "ratio": round(ours_ms / plain_ms, 3),
                "faces_ours": n_ours,
                "faces_plain": n_plain,
                "same_faces": same,
            }
        )
    by_size = {row["size"]: row for row in rows}
    return {
        "threads": THREADS,
        "detect_max_side": settings.detect_max_side,
        "sizes": rows,
        "detect_ratio_1080p": by_size["1080p"]["ratio"],
        "detect_ratio_4000x3000": by_size["4000x3000"]["ratio"],
        "detect_same_faces": all(row["same_faces"] for row in rows),
    }


def markdown(result: dict) -> str:
    lines = [
        f"Detection, median ms per image, torch {result['threads']} threads (ours detects on a copy of at most "
        f"{result['detect_max_side']} px)",
        "",
        "| image | ours ms | plain MTCNN ms | ours / plain | target | faces ours / plain | same faces |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in result["sizes"]:
        target = TARGETS.get(row["size"])
        lines.append(
            f"| {row['size']} ({row['width']}x{row['height']}) | {row['ours_ms']:.1f} | {row['plain_ms']:.1f} | "
            f"{row['ratio']:.3f} | {'<= ' + str(target) if target else ''} | {row['faces_ours']} / {row['faces_plain']} | "
            f"{'yes' if row['same_faces'] else 'NO'} |"
        )
    return "\n".join(lines)


def main() -> None:
    bench_main(__doc__, run, markdown, quick_help="fewer rounds")


if __name__ == "__main__":
    main()
