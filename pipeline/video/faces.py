"""``faces``: detect and embed every extracted frame, in batches through the shared engine.

Frames of one video have one size, so a batch of them shares every MTCNN pass
(``engine.analyze_batch``) and all their faces share the embedder's forward passes; JPEG decoding
of the next batch overlaps inference of the current one in a reader thread.
Writes ``faces.json`` (one record per face), ``embeddings.npy`` (row i is face i) and
``crops/`` (each face with a margin, for contact sheets and enrollment).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from inference_service.analysis.quality import crop_with_margin, frontality, sharpness
from inference_service.atomic import write_json, write_npy

from ..errors import PipelineError
from .rundir import RunDir

DEFAULT_BATCH = 32  # frames per batch: their faces share the embedder's forward passes
CROP_MARGIN = 0.4


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise PipelineError(f"cannot read frame {path}: run extract again")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _batches(paths: Sequence[Path], size: int) -> Iterator[list[np.ndarray]]:
    """Decoded batches, the next one being read while the caller works on the current one."""
    chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        if not chunks:
            return
        pending = pool.submit(lambda c: [_read_rgb(p) for p in c], chunks[0])
        for k in range(len(chunks)):
            images = pending.result()
            if k + 1 < len(chunks):
                pending = pool.submit(lambda c: [_read_rgb(p) for p in c], chunks[k + 1])
            yield images


def detect_faces(run_dir: Path, engine, batch_size: int = DEFAULT_BATCH) -> dict:
    """Analyse every frame of the run; returns ``faces.json``. No face at all is an error."""
    run = RunDir(run_dir)
    frames_meta = run.read_frames()
    frames = frames_meta["frames"]
    paths = [run.root / f["file"] for f in frames]
    if run.crops_dir.exists():
        shutil.rmtree(run.crops_dir)
    run.crops_dir.mkdir(parents=True)

    records: list[dict] = []
    vectors: list[np.ndarray] = []
    bar = tqdm(total=len(frames), desc="faces", unit="frame", file=sys.stderr)
    position = 0
    for images in _batches(paths, max(1, batch_size)):
        for image, analysed in zip(images, engine.analyze_batch(images)):
            frame = frames[position]
            position += 1
            for item in analysed:
                face = item.face
                face_id = len(records)
                crop_name = f"crops/{face_id:06d}.jpg"
                crop = crop_with_margin(image, face.box, CROP_MARGIN)
                cv2.imwrite(str(run.root / crop_name), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
                records.append(
                    {
                        "id": face_id,
                        "frame": frame["index"],
                        "time": frame["time"],
                        "file": frame["file"],
                        **face.to_dict(),
                        "crop": crop_name,
                        "sharpness": round(sharpness(image, face.box), 2),
                        "frontality": round(frontality(face.landmarks), 4),
                    }
                )
                vectors.append(item.embedding)
        bar.update(len(images))
    bar.close()

    dim = engine.embedder.dim
    matrix = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, dim), np.float32)
    meta = {"video": frames_meta.get("video"), "embedder": engine.describe(), "frames": len(frames), "faces": records}
    write_npy(run.embeddings, matrix)
    write_json(run.faces_json, meta)
    if run.clusters_json.exists():
        run.clusters_json.unlink()  # clusters of the old faces would point at the wrong rows
    if not records:
        raise PipelineError(f"no faces found in the {len(frames)} extracted frame(s) of {frames_meta.get('video')}")
    return meta
