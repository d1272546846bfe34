"""dlib's ResNet face descriptor (128-d), run by our torch port on aligned 150x150 chips."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..alignment import aligned_chips
from ..detection import Face
from .base import Embedder
from .dlib_resnet import INPUT_SIZE, DlibResNet
from .dlib_weights import find_dlib_model


class DlibEmbedder(Embedder):
    """128-d dlib-resnet embeddings of landmark-aligned 150x150 chips; works offline."""

    name = "dlib-resnet"
    dim = 128
    # Cosine threshold measured on ../shared/faces (MTCNN + aligned chips, every labelled face of
    # the gallery, probe, multi and resolution rows; `python -m pipeline evaluate` reproduces it):
    # the most similar pair of different people scored 0.920 (two gallery photos of different
    # actresses), the least similar pair of the same person 0.931 (leaving out the two faces cut
    # by the image border, which score lower). 0.926 is the midpoint.
    # (dlib's own rule, Euclidean 0.6 on raw descriptors of length ~1.47, is about cosine 0.917.)
    default_threshold = 0.926

    def __init__(self, module: torch.nn.Module, device: torch.device, batch_size: int = 32) -> None:
        super().__init__(module, device, batch_size)

    @classmethod
    def load(cls, model_path: str | Path | None, device: torch.device, batch_size: int = 32) -> "DlibEmbedder":
        """Parse the verified .dat file (milliseconds) into the torch port."""
        return cls(DlibResNet.from_dat(find_dlib_model(model_path)), device, batch_size)

    def crops(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        return aligned_chips(image, np.stack([f.landmarks for f in faces]), size=INPUT_SIZE)

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.module(pixels)
