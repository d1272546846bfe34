"""Evaluation datasets -> one embedding per labelled face, and the pairs to compare.

Three layouts are read: a folder of identity sub-folders (``NAME/*.jpg``: the largest face of
each photo is that person), an LFW-style ``pairs.txt`` with its image folder, and a manifest
(``MANIFEST.tsv`` rows of ``identity@x1,y1,x2,y2`` per face) where every face of a multi-face
photo is found by IoU with its manifest box. Each photo is decoded, detected and embedded once.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
MANIFEST_SKIP_ROLES = frozenset({"aligned", "video"})  # pre-cropped chips bypass detection; clips are not photos
STRANGER = "?"
MATCH_IOU = 0.5  # manifest boxes come from MTCNN, so a detection of the same face overlaps well
# A manifest note naming another file as the same picture ("... the same photo as gallery/x/2.jpg"):
# a pair of the two is a duplicate, not evidence that the embedder recognises a person.
SAME_PHOTO_NOTE = re.compile(r"same photo as\s+(\S+?)[\s:;,]*(?:$|\s)", re.IGNORECASE)
# Manifest roles whose rows are all one picture at several sizes (../shared/README.md: resolution).
ONE_PHOTO_ROLES = {"resolution"}


@dataclass(frozen=True)
class FaceSpec:
    """A face to evaluate: its photo, identity (None: an unlabelled stranger) and optional box."""

    path: Path
    identity: str | None
    box: tuple[float, float, float, float] | None  # None: the largest face in the photo
    photo: str  # faces with equal ``photo`` come from the same picture (duplicates, resizes)
    role: str = "gallery"
    label: str = ""  # how reports name this face: relative path, plus #index for multi-face photos


@dataclass
class EmbeddedFaces:
    """The faces that were found, their embeddings, and the ones that were not."""

    specs: list[FaceSpec]
    embeddings: np.ndarray  # len(specs) x dim, unit length
    missed: list[FaceSpec] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def pair_similarity(self, a: int, b: int) -> float:
        return float(np.dot(self.embeddings[a], self.embeddings[b]))


@dataclass(frozen=True)
class Pair:
    a: int
    b: int
    similarity: float
    genuine: bool


# --- reading the layouts --------------------------------------------------------------------


def folder_specs(root: Path) -> list[FaceSpec]:
    """``root/NAME/*.jpg``: one face (the largest) per photo, identity from the folder name."""
    specs = []
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        for image in sorted(p for p in person.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            rel = image.relative_to(root).as_posix()
            specs.append(FaceSpec(image, person.name, None, rel, "gallery", rel))
    if not specs:
        raise ValueError(f"{root}: no NAME/*.jpg|png identity folders found")
    return specs


def manifest_specs(manifest: Path, skip_roles: set[str] | frozenset[str] = MANIFEST_SKIP_ROLES) -> list[FaceSpec]:
    """Every labelled face of a MANIFEST.tsv (paths relative to its folder), one spec per box.

    ``?`` faces become strangers; rows of ``skip_roles`` (by default ``aligned`` and ``video``) are
    left out, and video rows always (they are clips, not photos).
    """
    root = manifest.parent
    specs = []
    with open(manifest, newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            role = row["role"]
            if role in skip_roles or role == "video":
                continue
            photo = row["path"]
            same = SAME_PHOTO_NOTE.search(row.get("note") or "")
            if same:
                photo = same.group(1)
            elif role in ONE_PHOTO_ROLES:
                photo = f"{role}:*"
            entries = [e for e in (row["faces"] or "").split(";") if e]
            for index, entry in enumerate(entries):
                name, _, box = entry.partition("@")
                x1, y1, x2, y2 = (float(v) for v in box.split(","))
                label = row["path"] if len(entries) == 1 else f"{row['path']}#{index}"
                identity = None if name == STRANGER else name
                specs.append(FaceSpec(root / row["path"], identity, (x1, y1, x2, y2), photo, role, label))
    if not specs:
        raise ValueError(f"{manifest}: no labelled faces")
    return specs


def parse_pairs(text: str) -> list[tuple[str, int, str, int]]:
    """LFW ``pairs.txt``: ``name i j`` (same person) or ``name1 i name2 j`` lines; headers skipped."""
    pairs = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or all(p.isdigit() for p in parts):
            continue  # blank line or the "folds count" header
        if len(parts) == 3:
            pairs.append((parts[0], int(parts[1]), parts[0], int(parts[2])))
        elif len(parts) == 4:
            pairs.append((parts[0], int(parts[1]), parts[2], int(parts[3])))
        else:
            raise ValueError(f"pairs file: cannot read line {line!r}")
    if not pairs:
        raise ValueError("pairs file holds no pairs")
    return pairs


def lfw_image(root: Path, name: str, number: int) -> Path:
    """LFW names images ``NAME/NAME_0001.jpg``; other suffixes are accepted too."""
    stem = root / name / f"{name}_{number:04d}"
    for suffix in (".jpg", ".png", ".jpeg", ".webp", ".bmp"):
        if stem.with_suffix(suffix).is_file():
            return stem.with_suffix(suffix)
    return stem.with_suffix(".jpg")


def pairs_specs(root: Path, pairs: Sequence[tuple[str, int, str, int]]) -> tuple[list[FaceSpec], list[tuple[int, int]]]:
    """The distinct photos of the listed pairs, and each pair as indices into them."""
    index: dict[Path, int] = {}
    specs: list[FaceSpec] = []
    listed = []
    for name_a, num_a, name_b, num_b in pairs:
        ends = []
        for name, num in ((name_a, num_a), (name_b, num_b)):
            path = lfw_image(root, name, num)
            if path not in index:
                index[path] = len(specs)
                rel = path.relative_to(root).as_posix()
                specs.append(FaceSpec(path, name, None, rel, "gallery", rel))
            ends.append(index[path])
        listed.append((ends[0], ends[1]))
    return specs, listed


# --- detection and embedding ----------------------------------------------------------------


def _match(faces: Sequence, box: tuple[float, float, float, float]):
    from inference_service.engine import iou

    scored = [(iou(face.box, box), face) for face in faces]
    best = max(scored, key=lambda s: s[0], default=(0.0, None))
    return best[1] if best[0] >= MATCH_IOU else None


def embed_specs(engine, specs: Sequence[FaceSpec], max_pixels: int = 40_000_000) -> EmbeddedFaces:
    """Detect each photo once, pick each spec's face (by box IoU, or the largest), embed them all."""
    from inference_service.engine import ImageError, load_image, pick_largest

    by_photo: dict[Path, list[int]] = {}
    for i, spec in enumerate(specs):
        by_photo.setdefault(spec.path, []).append(i)
    found: list[tuple[int, np.ndarray]] = []  # (spec index, chip)
    missed: list[FaceSpec] = []
    unreadable: list[str] = []
    for path, members in by_photo.items():
        try:
            image = load_image(path.read_bytes(), max_pixels)
        except (OSError, ImageError) as exc:
            unreadable.append(f"{path}: {exc}")
            missed.extend(specs[i] for i in members)
            continue
        faces = engine.detect(image)
        chosen = []
        for i in members:
            box = specs[i].box
            face = pick_largest(faces) if box is None else _match(faces, box)
            if face is None:
                missed.append(specs[i])
            else:
                chosen.append((i, face))
        if chosen:
            chips = engine.embedder.crops(image, [face for _, face in chosen])
            found.extend((i, chip) for (i, _), chip in zip(chosen, chips))
    found.sort(key=lambda item: item[0])
    kept = [specs[i] for i, _ in found]
    if found:
        embeddings = engine.embedder.embed(np.stack([chip for _, chip in found]))
    else:
        embeddings = np.zeros((0, engine.embedder.dim), dtype=np.float32)
    return EmbeddedFaces(kept, embeddings, missed, unreadable)


# --- pairs ------------------------------------------------------------------------------------


def same_person(a: FaceSpec, b: FaceSpec) -> bool:
    """Strangers are each a person of their own: never the same as anyone else."""
    return a.identity is not None and a.identity == b.identity


def all_pairs(faces: EmbeddedFaces) -> tuple[list[Pair], int]:
    """Every pair of found faces; genuine pairs of the same picture are left out (and counted)."""
    sims = faces.embeddings.astype(np.float64) @ faces.embeddings.astype(np.float64).T
    pairs, duplicates = [], 0
    for a, b in combinations(range(len(faces.specs)), 2):
        genuine = same_person(faces.specs[a], faces.specs[b])
        if genuine and faces.specs[a].photo == faces.specs[b].photo:
            duplicates += 1
            continue
        pairs.append(Pair(a, b, float(sims[a, b]), genuine))
    return pairs, duplicates


def listed_pairs(
    faces_all: Sequence[FaceSpec], faces: EmbeddedFaces, listed: Iterable[tuple[int, int]]
) -> tuple[list[Pair], int]:
    """The pairs a pairs.txt names, for the faces that were found; returns (pairs, skipped)."""
    position = {spec: k for k, spec in enumerate(faces.specs)}
    pairs, skipped = [], 0
    for a, b in listed:
        sa, sb = faces_all[a], faces_all[b]
        if sa not in position or sb not in position:
            skipped += 1
            continue
        ka, kb = position[sa], position[sb]
        pairs.append(Pair(ka, kb, faces.pair_similarity(ka, kb), same_person(sa, sb)))
    return pairs, skipped


__all__ = [
    "EmbeddedFaces",
    "FaceSpec",
    "Pair",
    "all_pairs",
    "embed_specs",
    "folder_specs",
    "lfw_image",
    "listed_pairs",
    "manifest_specs",
    "pairs_specs",
    "parse_pairs",
    "same_person",
]
