"""The layout of a run folder; JSON/NumPy files are written into it atomically (``inference_service.atomic``).

One place names every file so the commands (extract -> faces -> cluster -> plots / enroll) agree
on where things are, and each reports a missing earlier step by the command that makes it.
Files are written to a temporary name and renamed, so an interrupted command never leaves a
half-written ``faces.json`` that a later step would trust.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import PipelineError


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run folder."""

    root: Path

    @property
    def frames_dir(self) -> Path:
        return self.root / "frames"

    @property
    def frames_json(self) -> Path:
        return self.root / "frames.json"

    @property
    def crops_dir(self) -> Path:
        return self.root / "crops"

    @property
    def faces_json(self) -> Path:
        return self.root / "faces.json"

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings.npy"

    @property
    def clusters_json(self) -> Path:
        return self.root / "clusters.json"

    @property
    def sheets_dir(self) -> Path:
        return self.root / "clusters"

    @property
    def plots_dir(self) -> Path:
        return self.root / "plots"

    def _read(self, path: Path, made_by: str) -> dict:
        if not path.is_file():
            raise PipelineError(f"{path} not found: run `python -m pipeline {made_by}` first")
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise PipelineError(f"cannot read {path}: {exc}") from None

    def read_frames(self) -> dict:
        return self._read(self.frames_json, f"extract VIDEO --out {self.root}")

    def read_faces(self) -> tuple[dict, np.ndarray]:
        meta = self._read(self.faces_json, f"faces {self.root}")
        if not self.embeddings.is_file():
            raise PipelineError(f"{self.embeddings} not found: run `python -m pipeline faces {self.root}` again")
        vectors = np.load(self.embeddings)
        if len(vectors) != len(meta["faces"]):
            raise PipelineError(f"{self.embeddings} and {self.faces_json} disagree: run `faces` again")
        return meta, vectors

    def read_clusters(self) -> dict:
        return self._read(self.clusters_json, f"cluster {self.root}")
