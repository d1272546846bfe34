"""FaceNet (facenet-pytorch's InceptionResnetV1, 512-d) with its pretrained weights.

The weights are the ones facenet-pytorch publishes (converted from David Sandberg's TensorFlow
models). They are found, in order, at the configured ``FACE_WEIGHTS_DIR``, in facenet-pytorch's
own cache (``$TORCH_HOME/checkpoints``), or downloaded into that cache by facenet-pytorch's
own URL. Offline machines copy the ``.pt`` file once and point the setting at it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ...registry import EMBEDDERS, EmbedderSpec
from ..alignment import box_crops
from ..detection import Face
from .base import Embedder, WeightsUnavailableError

log = logging.getLogger(__name__)

RELEASE_URL = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"
WEIGHT_FILES = {
    "vggface2": "20180402-114759-vggface2.pt",
    "casia-webface": "20180408-102900-casia-webface.pt",
}


def torch_cache_dir() -> Path:
    """facenet-pytorch's cache folder, so weights it downloaded before are found again."""
    home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(os.path.expanduser(home)) / "checkpoints"


def locate_weights(dataset: str, weights_dir: Path | None) -> Path | None:
    """The weights file for ``dataset`` if it is configured or cached, else None."""
    filename = WEIGHT_FILES[dataset]
    if weights_dir is not None:
        candidate = Path(weights_dir)
        if candidate.is_file():
            return candidate
        if (candidate / filename).is_file():
            return candidate / filename
    cached = torch_cache_dir() / filename
    return cached if cached.is_file() else None


def download_weights(dataset: str) -> Path:
    """Fetch the weights into facenet-pytorch's cache (about 107 MB), atomically.

    Raises WeightsUnavailableError (never a bare OSError) when the cache cannot be written, e.g.
    a service user whose HOME is read-only: the message names TORCH_HOME and FACE_WEIGHTS_DIR.
    """
    filename = WEIGHT_FILES[dataset]
    target = torch_cache_dir() / filename
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        writable = os.access(target.parent, os.W_OK | os.X_OK)
        problem = "" if writable else "Permission denied"
    except OSError as exc:
        problem = exc.strerror or str(exc)
    if problem:
        raise WeightsUnavailableError(
            f"facenet-{dataset} weights are not cached and the cache folder {target.parent} is not "
            f"writable ({problem}): set TORCH_HOME to a writable folder, or copy {filename} into a "
            "folder and set FACE_WEIGHTS_DIR to it"
        )
    log.info("looking for the %s FaceNet weights: trying to download them to %s (about 107 MB, once)", dataset, target)
    partial = target.with_suffix(".part")
    try:
        torch.hub.download_url_to_file(RELEASE_URL + filename, str(partial), progress=False)
        partial.replace(target)
    except Exception as exc:  # network errors come in many types; all mean "not available"
        partial.unlink(missing_ok=True)
        raise WeightsUnavailableError(
            f"facenet-{dataset} weights are not cached and could not be downloaded ({exc}): on an "
            f"offline machine copy {filename} into a folder and set FACE_WEIGHTS_DIR to it"
        ) from exc
    return target


def load_inception_resnet(dataset: str, weights_dir: Path | None, allow_download: bool = True) -> torch.nn.Module:
    """InceptionResnetV1 with the ``dataset`` weights; raises WeightsUnavailableError if none."""
    from facenet_pytorch import InceptionResnetV1

    path = locate_weights(dataset, weights_dir)
    if path is None:
        if not allow_download:
            raise WeightsUnavailableError(
                f"facenet-{dataset} weights ({WEIGHT_FILES[dataset]}) were not found in "
                f"FACE_WEIGHTS_DIR={weights_dir} nor in {torch_cache_dir()}"
            )
        path = download_weights(dataset)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsUnavailableError(f"{path} is not a readable PyTorch state dict: {exc}") from exc
    model = InceptionResnetV1(pretrained=None, classify=False)
    # The published files also hold the training classifier ("logits.*"); embeddings don't use it.
    state = {k: v for k, v in state.items() if not k.startswith("logits.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise WeightsUnavailableError(
            f"{path} does not fit InceptionResnetV1: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    return model


class FaceNetEmbedder(Embedder):
    """512-d FaceNet embeddings of MTCNN's 160x160 box crops (the crops it was trained on)."""

    dim = 512
    input_size = 160

    def __init__(self, dataset: str, module: torch.nn.Module, device: torch.device, batch_size: int = 32) -> None:
        self.name = f"facenet-{dataset}"
        # The threshold and where it comes from: the registry.
        self.default_threshold = EMBEDDERS[self.name].default_threshold
        super().__init__(module, device, batch_size)

    def crops(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        return box_crops(image, np.array([f.box for f in faces]), size=self.input_size)

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # facenet-pytorch's fixed_image_standardization.
        return self.module((pixels - 127.5) / 128.0)


def load(
    spec: EmbedderSpec,
    device: torch.device,
    *,
    weights_dir: Path | None,
    dlib_model_path: Path | None,
    batch_size: int,
    allow_download: bool,
) -> FaceNetEmbedder:
    """The registry's loader: the weights named after ``spec``'s training set."""
    dataset = spec.name.removeprefix("facenet-")
    return FaceNetEmbedder(
        dataset, load_inception_resnet(dataset, weights_dir, allow_download=allow_download), device, batch_size
    )
