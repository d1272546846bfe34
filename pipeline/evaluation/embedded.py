"""A labelled dataset loaded and embedded by the engine: what both commands start from (models load only here)."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .data import (
    EmbeddedFaces,
    Pair,
    all_pairs,
    embed_specs,
    folder_specs,
    listed_pairs,
    manifest_specs,
    pairs_specs,
    parse_pairs,
)


@dataclass
class Dataset:
    """Embedded faces and the pairs to judge them by."""

    source: str
    mode: str
    faces: EmbeddedFaces
    pairs: list[Pair]
    same_photo_pairs: int  # genuine pairs of one picture, left out
    skipped_pairs: int  # listed pairs with a face not found
    seconds: float

    @property
    def genuine(self) -> np.ndarray:
        return np.array([p.similarity for p in self.pairs if p.genuine])

    @property
    def impostor(self) -> np.ndarray:
        return np.array([p.similarity for p in self.pairs if not p.genuine])


def load_engine(embedder: str | None):
    """The engine as the service would build it, with ``embedder`` overriding FACE_EMBEDDER."""
    from inference_service.analysis.engine_loader import load_engine as load_service_engine
    from inference_service.config import Settings

    overrides: dict[str, Any] = {"embedder": embedder} if embedder else {}
    settings = Settings(**overrides)
    return load_service_engine(settings, gallery=settings.gallery), settings


def load_dataset(args: argparse.Namespace, engine, max_pixels: int) -> Dataset:
    """Read the dataset in the layout the arguments name and embed every face once."""
    root: Path = args.dataset
    started = time.perf_counter()
    if args.pairs is not None:
        specs, listed = pairs_specs(root, parse_pairs(Path(args.pairs).read_text()))
        faces = embed_specs(engine, specs, max_pixels)
        pairs, skipped = listed_pairs(specs, faces, listed)
        return Dataset(str(args.pairs), "pairs", faces, pairs, 0, skipped, time.perf_counter() - started)
    if args.manifest or (root.is_file() and root.suffix == ".tsv"):
        manifest = root if root.is_file() else root / "MANIFEST.tsv"
        specs = manifest_specs(manifest, skip_roles=set(args.skip_roles))
        mode, source = "manifest", str(manifest)
    else:
        if not root.is_dir():
            raise ValueError(f"{root}: not a folder")
        specs = folder_specs(root)
        mode, source = "folders", str(root)
    faces = embed_specs(engine, specs, max_pixels)
    pairs, duplicates = all_pairs(faces)
    return Dataset(source, mode, faces, pairs, duplicates, 0, time.perf_counter() - started)
