"""The embedders this service knows: one table that the settings, the CLI and evaluation read.

Deliberately free of torch and numpy: ``config.py`` builds its ``FACE_EMBEDDER`` choices from it,
and a bad setting must fail in a second, before any model code is imported. Each entry names the
function that loads it (``module:function``), imported only when that embedder is wanted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class EmbedderSpec:
    """One embedder: what it produces, its default cosine threshold and where that number comes from."""

    name: str
    dim: int
    default_threshold: float
    threshold_source: str
    loader: str  # "module:function" taking (spec, device, weights_dir, dlib_model_path, batch_size, allow_download)
    summary: str


EMBEDDERS: dict[str, EmbedderSpec] = {
    spec.name: spec
    for spec in (
        EmbedderSpec(
            name="dlib-resnet",
            dim=128,
            default_threshold=0.926,
            threshold_source=(
                "measured on ../shared/faces (MTCNN + aligned chips, every labelled face of the gallery, "
                "probe, multi and resolution rows; `python -m pipeline evaluate` reproduces it): the most "
                "similar pair of different people scored 0.920 (two gallery photos of different actresses), "
                "the least similar pair of the same person 0.931 (leaving out the two faces cut by the image "
                "border, which score lower); 0.926 is the midpoint. dlib's own rule, Euclidean 0.6 on raw "
                "descriptors of length ~1.47, is about cosine 0.917."
            ),
            loader="inference_service.engine.embedders.dlib:load",
            summary="128-d, dlib's ResNet ported to torch; works offline",
        ),
        *(
            EmbedderSpec(
                name=f"facenet-{dataset}",
                dim=512,
                default_threshold=0.45,
                threshold_source=(
                    "LFW-optimal L2 thresholds reported for Sandberg's FaceNet models lie between 1.1 and "
                    "1.24 (davidsandberg/facenet issues #640, #891), i.e. cosine 0.23-0.40; deepface uses "
                    "L2 1.04 (cosine 0.46) for the same VGGFace2 weights. Cosine 0.45 (L2 1.05) is the "
                    "strict end, because answering 'unknown' beats naming the wrong person. Calibrate on "
                    "your own faces with `python -m pipeline calibrate`."
                ),
                loader="inference_service.engine.embedders.facenet:load",
                summary=f"512-d FaceNet (InceptionResnetV1) trained on {label}; weights downloaded once",
            )
            for dataset, label in (("vggface2", "VGGFace2"), ("casia-webface", "CASIA-WebFace"))
        ),
    )
}

EMBEDDER_NAMES: tuple[str, ...] = tuple(EMBEDDERS)
# "auto": the gallery's embedder if it has one, else facenet-vggface2 when its weights can be had,
# else dlib-resnet (inference_service.engine.embedders.resolve_auto).
EMBEDDER_CHOICES: tuple[str, ...] = ("auto", *EMBEDDER_NAMES)
EmbedderName = Literal[EMBEDDER_CHOICES]  # type: ignore[valid-type]


def describe_choices() -> str:
    """The choices as one help line: "auto, dlib-resnet (128-d, ...), ..."."""
    return "auto (the gallery's, else facenet-vggface2 if its weights can be had, else dlib-resnet), " + ", ".join(
        f"{spec.name} ({spec.summary})" for spec in EMBEDDERS.values()
    )
