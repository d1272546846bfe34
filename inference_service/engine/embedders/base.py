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
    ``embed`` owns batching, the device and ``inference_mode`` so no subclass can forget them,
    and the flip test-time augmentation (``flip_tta``): each chip and its mirror image go through
    the network in one batch and their unit embeddings are averaged. A mirrored face is the same
    person seen from the other side, so the mean keeps what both views share and damps what one
    pose or one-sided light adds (measured in README "Flip test-time augmentation").
    """

    name: str
    dim: int
    default_threshold: float

    def __init__(
        self, module: torch.nn.Module, device: torch.device, batch_size: int = 32, flip_tta: bool = True
    ) -> None:
        self.device = device
        self.batch_size = batch_size
        self.flip_tta = flip_tta
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
        # With the mirror images a pass holds twice the chips: halve the step to keep batch_size.
        step = max(1, self.batch_size // 2) if self.flip_tta else self.batch_size
        with torch.inference_mode():
            for start in range(0, len(chips), step):
                batch = torch.from_numpy(chips[start : start + step]).to(self.device)
                pixels = batch.permute(0, 3, 1, 2).float()
                if self.flip_tta:
                    pixels = torch.cat([pixels, pixels.flip(3)])  # one forward pass of 2N chips
                pixels = pixels.contiguous(memory_format=torch.channels_last)
                vectors = torch.nn.functional.normalize(self._forward(pixels).float(), dim=1)
                if self.flip_tta:
                    n = len(batch)
                    vectors = torch.nn.functional.normalize(vectors[:n] + vectors[n:], dim=1)
                out.append(vectors.cpu().numpy())
        return np.concatenate(out).astype(np.float32, copy=False)

    def embed_faces(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """Embeddings of the given faces of one image, in the same order."""
        if not faces:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed(self.crops(image, faces))
