"""The one small interface every face embedder implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch

from ..detection import Face


class WeightsUnavailableError(RuntimeError):
    """An embedder's weights are neither configured, cached nor downloadable."""


class Embedder(ABC):
    """Maps faces to L2-normalized vectors whose cosine similarity says "same person".

    Subclasses declare ``name``, ``dim`` and ``default_threshold`` (with where that number comes
    from), say how a face is cropped for them (``crops``) and run one batch (``_forward``).
    ``embed`` owns batching, the device and ``inference_mode`` so no subclass can forget them.
    """

    name: str
    dim: int
    default_threshold: float

    def __init__(self, module: torch.nn.Module, device: torch.device, batch_size: int = 32) -> None:
        self.device = device
        self.batch_size = batch_size
        self.module = module.to(device).eval()

    @abstractmethod
    def crops(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """N x S x S x 3 uint8 RGB crops of ``faces`` laid out as this network expects."""

    @abstractmethod
    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """One batch: N x 3 x S x S float pixels in 0..255 on the device -> N x dim."""

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Unit-length float32 embeddings of N x S x S x 3 uint8 chips, computed in batches."""
        chips = np.asarray(chips, dtype=np.uint8)
        if len(chips) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        with torch.inference_mode():
            for start in range(0, len(chips), self.batch_size):
                batch = torch.from_numpy(chips[start : start + self.batch_size]).to(self.device)
                pixels = batch.permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last)
                vectors = self._forward(pixels).float()
                out.append(torch.nn.functional.normalize(vectors, dim=1).cpu().numpy())
        return np.concatenate(out).astype(np.float32, copy=False)

    def embed_faces(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """Embeddings of the given faces of one image, in the same order."""
        if not faces:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed(self.crops(image, faces))
