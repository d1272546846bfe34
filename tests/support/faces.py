"""The labelled test faces of FACES_DIR (MANIFEST.tsv), and the one skip CI accepts."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LabelledFace:
    identity: str  # "?" for an unlabelled person
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class ManifestRow:
    path: Path
    role: str
    faces: tuple[LabelledFace, ...]
    note: str


REPO = Path(__file__).resolve().parents[2]


def faces_dir_path() -> Path:
    return Path(os.environ.get("FACES_DIR", REPO.parent / "shared" / "faces")).resolve()


def read_manifest(root: Path) -> list[ManifestRow]:
    rows = []
    with open(root / "MANIFEST.tsv", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            faces = []
            if row["role"] != "video":
                for spec in filter(None, row["faces"].split(";")):
                    name, box = spec.split("@")
                    x1, y1, x2, y2 = (float(v) for v in box.split(","))
                    faces.append(LabelledFace(name, (x1, y1, x2, y2)))
            rows.append(ManifestRow(root / row["path"], row["role"], tuple(faces), row.get("note") or ""))
    return rows


OPTIONAL_SKIP = "needs a privilege this machine does not grant:"
