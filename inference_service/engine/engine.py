"""The face engine: image -> faces -> embeddings. The only place in the project that loads models."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ..config import Settings
from .batcher import Batcher, Priority
from .detection import DetectorConfig, Face, MTCNNDetector
from .embedders import Embedder, create_embedder, resolve_auto

log = logging.getLogger(__name__)


def select_device(setting: str) -> torch.device:
    """``auto`` is CUDA when a GPU is visible, else CPU; ``cuda`` without a GPU is an error."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("FACE_DEVICE=cuda but torch sees no CUDA device")
    if setting in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


@dataclass(frozen=True)
class AnalyzedFace:
    """A detected face with its unit-length embedding."""

    face: Face
    embedding: np.ndarray


class FaceEngine:
    """Detector + embedder with the threshold that goes with them.

    Both models are read-only after loading, so one engine serves concurrent threads.
    """

    def __init__(self, detector: MTCNNDetector, embedder: Embedder, threshold: float | None = None) -> None:
        self.detector = detector
        self.embedder = embedder
        self.threshold = embedder.default_threshold if threshold is None else threshold
        # Images that detect_batch/analyze_batch work on at once; see parallelize_images.
        self.image_workers = 1
        # Set by share_passes: then every call below goes through one batched pass (engine/batcher.py).
        self.batcher: Batcher | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, gallery_embedder: str | None = None, concurrent_callers: int = 1
    ) -> FaceEngine:
        """Load both models as configured. ``gallery_embedder`` is what an existing gallery holds.

        ``FACE_THREADS`` is the CPU budget of the whole process: with ``concurrent_callers``
        threads calling the engine at once (the API's workers), each gets its share as torch
        intra-op threads. Measured on 2 cores: 2 workers x 1 thread serve 1.6x the requests of
        one request at a time on 2 threads, which is only 1.2x faster than on 1.
        """
        device = select_device(settings.device)
        if device.type == "cpu":
            torch.set_num_threads(max(1, settings.threads // max(1, concurrent_callers)))
        detector = MTCNNDetector(
            DetectorConfig(
                min_face_size=settings.min_face_size,
                min_score=settings.min_score,
                max_side=settings.detect_max_side,
            ),
            device=device,
        )
        if settings.embedder == "auto":
            embedder = resolve_auto(
                device,
                gallery_embedder=gallery_embedder,
                weights_dir=settings.weights_dir,
                dlib_model_path=settings.dlib_model_path,
                batch_size=settings.batch_size,
            )
        else:
            embedder = create_embedder(
                settings.embedder,
                device,
                gallery_embedder=gallery_embedder,
                weights_dir=settings.weights_dir,
                dlib_model_path=settings.dlib_model_path,
                batch_size=settings.batch_size,
            )
        embedder.flip_tta = settings.flip_tta
        log.info(
            "face engine: detector mtcnn, embedder %s (%d-d%s) on %s",
            embedder.name,
            embedder.dim,
            ", flip TTA" if embedder.flip_tta else "",
            device,
        )
        return cls(detector, embedder, settings.threshold)

    # ------------------------------------------------------------------------------------------
    def detect(self, image: np.ndarray) -> list[Face]:
        if self.batcher is not None:
            return self.batcher.detect([image], Priority.PHOTO)[0]
        return self.detector.detect(image)

    def share_passes(self, window_s: float, max_images: int) -> Batcher:
        """From now on concurrent callers share batched forward passes (see engine/batcher.py)."""
        self.stop_sharing()
        self.batcher = Batcher(self.detector, self.embedder, window_s, max_images)
        return self.batcher

    def stop_sharing(self) -> None:
        """Back to each caller running the models itself, once the queued work is done."""
        batcher, self.batcher = self.batcher, None
        if batcher is not None:
            batcher.close()

    def parallelize_images(self, workers: int) -> None:
        """Batch calls process ``workers`` whole images at once, one torch thread each (CPU).

        Meant for batch work that owns its process, like the video pipeline: torch's thread
        count is process-wide, so single-image latency (the API's case) is better served by
        intra-op threads instead.
        """
        if self.detector.device.type == "cpu" and workers > 1:
            torch.set_num_threads(1)
            self.image_workers = workers

    def detect_batch(
        self, images: Sequence[np.ndarray], workers: int | None = None, priority: Priority = Priority.BACKGROUND
    ) -> list[list[Face]]:
        """Faces in each image; ``workers`` (default ``image_workers``) images at once.

        On a CPU the MTCNN nets are too small to keep several cores busy within one image (two
        intra-op threads gain ~1.3x), while whole images in parallel, one torch thread each,
        gain ~2x on two cores: that is how the video pipeline uses it (after
        ``torch.set_num_threads(1)``). Batching equal-size images into one tensor helps on GPU.
        With shared passes on, the images join other callers' at ``priority`` (batch calls are
        video and live work, behind photo requests).
        """
        if self.batcher is not None:
            return self.batcher.detect(images, priority)
        workers = self.image_workers if workers is None else workers
        if workers <= 1 or len(images) < 2 or self.detector.device.type != "cpu":
            return self.detector.detect_batch(images)
        with ThreadPoolExecutor(min(workers, len(images))) as pool:
            return list(pool.map(self.detector.detect, images))

    def embed_faces(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        return self.embedder.embed_faces(image, faces)

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Embeddings of chips cut by ``embedder.crops``; in a shared pass when that is on."""
        if self.batcher is not None:
            return self.batcher.embed(chips, Priority.PHOTO)
        return self.embedder.embed(chips)

    def analyze(self, image: np.ndarray) -> list[AnalyzedFace]:
        """Detect and embed every face of one image."""
        return self.analyze_batch([image], priority=Priority.PHOTO)[0]

    def analyze_batch(
        self, images: Sequence[np.ndarray], workers: int | None = None, priority: Priority = Priority.BACKGROUND
    ) -> list[list[AnalyzedFace]]:
        """Detect in all images, then embed all their faces in shared batches.

        ``workers`` as in :meth:`detect_batch`; the faces are then embedded in that many
        parallel parts. ``priority`` as in :meth:`detect_batch`.
        """
        if self.batcher is not None:
            found = self.batcher.analyze(images, priority)
            return [[AnalyzedFace(face, vector) for face, vector in faces] for faces in found]
        workers = self.image_workers if workers is None else workers
        detections = self.detect_batch(images, workers)
        chips = [self.embedder.crops(image, faces) for image, faces in zip(images, detections) if faces]
        if not chips:
            return [[] for _ in images]
        vectors = self._embed_parallel(np.concatenate(chips), workers)
        out: list[list[AnalyzedFace]] = []
        offset = 0
        for faces in detections:
            out.append([AnalyzedFace(f, vectors[offset + i]) for i, f in enumerate(faces)])
            offset += len(faces)
        return out

    def _embed_parallel(self, chips: np.ndarray, workers: int) -> np.ndarray:
        """Embed in ``workers`` near-equal parts on as many threads (each part still batched)."""
        if workers <= 1 or len(chips) < 2 or self.embedder.device.type != "cpu":
            return self.embedder.embed(chips)
        parts = np.array_split(chips, min(workers, len(chips)))
        with ThreadPoolExecutor(len(parts)) as pool:
            return np.concatenate(list(pool.map(self.embedder.embed, parts)))

    def describe(self) -> dict:
        return {"name": self.embedder.name, "dim": self.embedder.dim, "threshold": self.threshold}
