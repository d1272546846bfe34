"""The face engine: image -> faces -> embeddings. The only place in the project that loads models."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..config import Settings
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

    @classmethod
    def from_settings(cls, settings: Settings, gallery_embedder: str | None = None) -> "FaceEngine":
        """Load both models as configured. ``gallery_embedder`` is what an existing gallery holds."""
        device = select_device(settings.device)
        if device.type == "cpu":
            torch.set_num_threads(settings.threads)
        detector = MTCNNDetector(
            DetectorConfig(
                min_face_size=settings.min_face_size,
                min_score=settings.min_score,
                max_side=settings.detect_max_side,
            ),
            device=device,
        )
        common = dict(
            weights_dir=settings.weights_dir, dlib_model_path=settings.dlib_model_path, batch_size=settings.batch_size
        )
        if settings.embedder == "auto":
            embedder = resolve_auto(device, gallery_embedder=gallery_embedder, **common)
        else:
            embedder = create_embedder(settings.embedder, device, **common)
        log.info("face engine: detector mtcnn, embedder %s (%d-d) on %s", embedder.name, embedder.dim, device)
        return cls(detector, embedder, settings.threshold)

    # ------------------------------------------------------------------------------------------
    def detect(self, image: np.ndarray) -> list[Face]:
        return self.detector.detect(image)

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        return self.detector.detect_batch(images)

    def embed_faces(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        return self.embedder.embed_faces(image, faces)

    def analyze(self, image: np.ndarray) -> list[AnalyzedFace]:
        """Detect and embed every face of one image."""
        return self.analyze_batch([image])[0]

    def analyze_batch(self, images: Sequence[np.ndarray]) -> list[list[AnalyzedFace]]:
        """Detect in all images, then embed all their faces in shared batches."""
        detections = self.detect_batch(images)
        chips = [self.embedder.crops(image, faces) for image, faces in zip(images, detections) if faces]
        if not chips:
            return [[] for _ in images]
        vectors = self.embedder.embed(np.concatenate(chips))
        out: list[list[AnalyzedFace]] = []
        offset = 0
        for faces in detections:
            out.append([AnalyzedFace(f, vectors[offset + i]) for i, f in enumerate(faces)])
            offset += len(faces)
        return out

    def describe(self) -> dict:
        return {"name": self.embedder.name, "dim": self.embedder.dim, "threshold": self.threshold}
