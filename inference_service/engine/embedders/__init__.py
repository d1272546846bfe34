"""Embedder registry: build one by name, or pick one automatically."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from .base import Embedder, WeightsUnavailableError

log = logging.getLogger(__name__)

EMBEDDER_NAMES = ("dlib-resnet", "facenet-vggface2", "facenet-casia-webface")


def create_embedder(
    name: str,
    device: torch.device,
    *,
    weights_dir: Path | None = None,
    dlib_model_path: Path | None = None,
    batch_size: int = 32,
    allow_download: bool = True,
) -> Embedder:
    """The embedder called ``name``; ``auto`` is resolved by :func:`resolve_auto` first."""
    if name == "dlib-resnet":
        from .dlib import DlibEmbedder

        return DlibEmbedder.load(dlib_model_path, device, batch_size)
    if name in ("facenet-vggface2", "facenet-casia-webface"):
        from .facenet import FaceNetEmbedder, load_inception_resnet

        dataset = name.removeprefix("facenet-")
        module = load_inception_resnet(dataset, weights_dir, allow_download=allow_download)
        return FaceNetEmbedder(dataset, module, device, batch_size)
    raise ValueError(f"unknown embedder {name!r}; choose one of auto, {', '.join(EMBEDDER_NAMES)}")


def resolve_auto(
    device: torch.device,
    *,
    gallery_embedder: str | None,
    weights_dir: Path | None = None,
    dlib_model_path: Path | None = None,
    batch_size: int = 32,
) -> Embedder:
    """``auto``: the gallery's embedder if it has one (never mix vector spaces), else the 512-d
    FaceNet when its weights are configured, cached or downloadable, else dlib-resnet."""
    if gallery_embedder:
        return create_embedder(
            gallery_embedder, device, weights_dir=weights_dir, dlib_model_path=dlib_model_path, batch_size=batch_size
        )
    try:
        return create_embedder(
            "facenet-vggface2", device, weights_dir=weights_dir, batch_size=batch_size, allow_download=True
        )
    except WeightsUnavailableError as exc:
        # One line that says why and how to get the 512-d model (the message names the setting).
        log.warning("embedder auto: using dlib-resnet (128-d) because %s", exc)
    return create_embedder("dlib-resnet", device, dlib_model_path=dlib_model_path, batch_size=batch_size)


__all__ = ["EMBEDDER_NAMES", "Embedder", "WeightsUnavailableError", "create_embedder", "resolve_auto"]
