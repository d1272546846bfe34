"""What keeping a thumbnail per enrolled face costs: ``python -m benchmarks.thumbnail_cost [--rounds N]``.

Bytes per face (the stored JPEG), the time to cut and encode one, and the time of a whole
one-photo enrollment (decode, detect, embed, SQLite write) with and without it, interleaved so
both see the same machine load. Real photos from ``FACES_DIR/gallery``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

from inference_service.analysis import photos
from inference_service.config import Settings
from inference_service.engine import FaceEngine, load_image, pick_largest
from inference_service.engine.thumbnails import face_thumbnail
from inference_service.gallery import Gallery


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    paths = sorted(Path(os.environ.get("FACES_DIR", "/work/shared/faces"), "gallery").glob("*/*.jpg"))
    engine = FaceEngine.from_settings(Settings(embedder="dlib-resnet", threads=2))
    limits = photos.PixelLimits(per_image=40_000_000, per_request=200_000_000)
    sizes, encode_ms = [], []
    for path in paths:
        image = load_image(path.read_bytes())
        face = pick_largest(engine.detect(image))
        if face is None:
            continue
        start = time.perf_counter()
        jpeg = face_thumbnail(image, face.box)
        encode_ms.append((time.perf_counter() - start) * 1000)
        sizes.append(len(jpeg or b""))
    with_ms, without_ms = [], []
    with tempfile.TemporaryDirectory() as folder:
        gallery = Gallery.open(Path(folder) / "g.sqlite3", engine.embedder.name, engine.embedder.dim)
        for _ in range(args.rounds):
            for path in paths:
                upload = [(path.name, path.read_bytes())]
                for keep, out in ((True, with_ms), (False, without_ms)):
                    patch = mock.patch.object(
                        photos, "face_thumbnail", (lambda *a: None) if not keep else face_thumbnail
                    )
                    with patch:
                        start = time.perf_counter()
                        try:
                            photos.enroll(engine, gallery, "bench", upload, limits)
                        except photos.InputError:
                            continue
                        out.append((time.perf_counter() - start) * 1000)
        gallery.close()
    print(
        json.dumps(
            {
                "faces": len(sizes),
                "thumbnail_bytes_mean": round(statistics.mean(sizes)),
                "thumbnail_bytes_max": max(sizes),
                "thumbnail_encode_ms_median": round(statistics.median(encode_ms), 2),
                "enroll_ms_median_with": round(statistics.median(with_ms), 1),
                "enroll_ms_median_without": round(statistics.median(without_ms), 1),
                "enrollments_each": len(with_ms),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
