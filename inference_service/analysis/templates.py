"""A track's template: one embedding made from all of its faces, each weighed by how well it shows the face.

A track of a profile, a small face or a face half out of the frame scores just under the threshold
in every frame, so averaging frame *similarities* still misses. Averaging the *embeddings* first
keeps what the frames agree on (the person) and cancels much of what they do not (pose, blur,
light): on the shared stage clip the mean embedding of the piano player's profile scores 0.936
against his gallery photos while his single frames average 0.924 (README "Track templates").
Faces are weighed by size, sharpness and frontality so that a sharp frontal frame counts more
than a blurred profile, and faces far from the rest (a detector box that slid onto a neighbour)
are dropped before the final mean.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .quality import frontality
from .tracking import Decision, Detection, decide_identity

# Face width (pixels) from which size adds no more weight: dlib-resnet's chips are 150 px and
# MTCNN's boxes are a little tighter than the chip, so ~80 px already holds every detail it uses.
FULL_WIDTH = 80.0
# Laplacian variance (quality.sharpness, at 112 px) from which sharpness adds no more weight: the
# stage clip's frontal close-up frames measure 150-350, its dark audience frames 5-40.
FULL_SHARPNESS = 100.0
# A profile still counts (it is the view a profile track has), at a third of a frontal face.
PROFILE_WEIGHT = 0.3
# The least weight any face gets for size or sharpness: a small or soft face still adds evidence.
FLOOR = 0.1
# A face whose cosine to the first (weighted) mean lies this far below the track's median
# cosine is not the same face; a track's own faces lie within ~0.05 of each other (dlib-resnet).
OUTLIER_DROP = 0.08
# How far a template's best identity must lead the next one. The track threshold alone keeps
# strangers out (their templates stay >= 0.005 below it on the labelled tracks); this only keeps
# two enrolled look-alikes apart, and tracks named right lead their runner-up by >= 0.020.
TEMPLATE_MARGIN = 0.01

# Added to the single-photo threshold for a track template (calibrated on labelled tracks:
# README "Track templates").
TRACK_THRESHOLD_OFFSET = 0.0


def track_threshold_for(threshold: float) -> float:
    """The template threshold that goes with a single-photo ``threshold``."""
    return round(threshold + TRACK_THRESHOLD_OFFSET, 4)


@dataclass(frozen=True)
class TrackTemplate:
    vector: np.ndarray  # unit length
    faces: int  # faces in the mean
    dropped: int  # outliers left out


def face_weight(det: Detection) -> float:
    """Size x sharpness x pose weight of one face, in (0, 1]."""
    width = max(0.0, det.box[2] - det.box[0])
    size = min(1.0, max(FLOOR, width / FULL_WIDTH))
    sharp = 1.0 if det.sharpness is None else min(1.0, max(FLOOR, det.sharpness / FULL_SHARPNESS))
    pose = 1.0 if det.landmarks is None else PROFILE_WEIGHT + (1.0 - PROFILE_WEIGHT) * frontality(det.landmarks)
    return size * sharp * pose


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def track_template(detections: Sequence[Detection]) -> TrackTemplate | None:
    """The weighted mean embedding of the track's faces without outliers; None without embeddings."""
    dets = [d for d in detections if d.embedding is not None]
    if not dets:
        return None
    vectors = np.stack([np.asarray(d.embedding, dtype=np.float64) for d in dets])
    weights = np.array([face_weight(d) for d in dets])
    first = _unit(weights @ vectors)
    cosines = vectors @ first
    keep = cosines >= np.median(cosines) - OUTLIER_DROP
    vector = _unit(weights[keep] @ vectors[keep])
    return TrackTemplate(vector.astype(np.float32), int(keep.sum()), int((~keep).sum()))


def identity_scores(
    template: np.ndarray, single_faces: Mapping[str, float], identity_faces: Mapping[str, np.ndarray]
) -> dict[str, float]:
    """Per identity, the better of the template's best single gallery face and its identity template.

    ``single_faces``: identity -> best cosine to one of its gallery faces (the gallery search);
    ``identity_faces``: identity -> its gallery embeddings, whose unit mean is its template.
    """
    out = dict(single_faces)
    for name, faces in identity_faces.items():
        if len(faces):
            mean = _unit(np.asarray(faces, dtype=np.float64).mean(axis=0))
            out[name] = max(out.get(name, -1.0), float(mean @ np.asarray(template, dtype=np.float64)))
    return out


# identity -> score of a template against the gallery (EngineMatcher.template_candidates)
TemplateSearch = Callable[[np.ndarray], Mapping[str, float]]


def name_track(
    detections: Sequence[Detection],
    threshold: float,
    track_threshold: float,
    search: TemplateSearch | None,
    margin: float = 0.02,
    min_faces: int = 3,
    template_margin: float = TEMPLATE_MARGIN,
) -> Decision:
    """The one track-naming rule of video jobs, the CLI and live recognition.

    ``search`` scores the track's template against the gallery; without it (a matcher over the
    API, which returns no embeddings) the track is named from its frames alone.
    """
    template = track_template(detections) if search is not None else None
    scores = dict(search(template.vector)) if search is not None and template is not None else None
    return decide_identity(
        detections,
        threshold,
        margin=margin,
        min_faces=min_faces,
        template=scores,
        track_threshold=track_threshold,
        template_margin=template_margin,
    )
