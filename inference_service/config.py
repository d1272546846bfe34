"""All service settings in one place, read from ``FACE_*`` environment variables.

Every other module receives a :class:`Settings` instance instead of reading the environment,
so tests can build engines and apps with explicit settings and nothing depends on import order.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .registry import EmbedderName, describe_choices

# A gallery file may be given as a Path (tests, the pipeline); the setting itself is text (a URL).
GalleryLocation = Annotated[str, BeforeValidator(lambda v: os.fspath(v) if isinstance(v, os.PathLike) else v)]


class Settings(BaseSettings):
    """Service configuration; each field maps to ``FACE_<NAME>`` (case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix="FACE_", extra="ignore")

    # --- HTTP server -------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Interface the API binds to.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port of the API.")
    api_key: str | None = Field(
        None, description="When set, enrollment and deletion need header X-API-Key with this value."
    )
    read_api_key: str | None = Field(
        None,
        description=(
            "When set, recognition, verification, embedding, detection and the identity listings "
            "need header X-API-Key with this value or FACE_API_KEY's."
        ),
    )
    max_upload_mb: float = Field(10.0, gt=0, description="Largest accepted upload, in MiB.")
    body_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Seconds a client has to send a request's whole body; slower ones get 408.",
    )
    workers: int = Field(2, ge=1, description="Inference worker threads.")
    queue_size: int = Field(
        16, ge=1, description="Requests allowed to wait for a worker before the API answers 503."
    )

    # --- storage -----------------------------------------------------------------------------
    gallery: GalleryLocation = Field(
        "data/gallery.sqlite3",
        description=(
            "Where the gallery lives: a SQLite file path or sqlite:///path, or "
            "postgresql://user:password@host:port/database shared by several API replicas."
        ),
    )
    sync_poll_s: float = Field(
        2.0, gt=0, description="PostgreSQL gallery: replicas also poll the change log this often (seconds)."
    )

    # --- images ------------------------------------------------------------------------------
    max_pixels: int = Field(
        40_000_000, gt=0, description="Largest image (width x height) decoded; checked from the header."
    )
    # Images are decoded one at a time, so memory is bounded by max_pixels; this bounds the work
    # (decode + detect) one request may ask for: eight 12-megapixel phone photos, or 2.5 images
    # at the per-image limit. A request of 32 tiny PNGs claiming 6000x6000 each is refused.
    max_request_pixels: int = Field(
        100_000_000,
        gt=0,
        description="Largest sum of width x height over all images of one request; checked from the headers.",
    )

    # --- models ------------------------------------------------------------------------------
    embedder: EmbedderName = Field("auto", description=f"Which face embedder to use: {describe_choices()}.")
    threshold: float | None = Field(
        None, ge=-1.0, le=1.0, description="Cosine threshold override; default is the embedder's own."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Torch device.")
    threads: int = Field(
        2,
        ge=1,
        description=(
            "CPU threads for inference in all: the API gives each of its workers threads/workers "
            "torch threads; the video pipeline analyses this many frames at once."
        ),
    )
    weights_dir: Path | None = Field(
        None,
        description=(
            "Folder (or .pt file) holding InceptionResnetV1 weights for offline machines: "
            "20180402-114759-vggface2.pt / 20180408-102900-casia-webface.pt as facenet-pytorch names them."
        ),
    )
    dlib_model_path: Path | None = Field(
        None, description="dlib_face_recognition_resnet_model_v1.dat, or a folder holding it."
    )
    min_face_size: int = Field(
        20,
        ge=12,
        description=(
            "Smallest face to detect, in pixels of the image the detector sees: images larger than "
            "detect_max_side are downscaled first, so there it is min_face_size x scale of the original."
        ),
    )
    # MTCNN's face probability. On ../shared/faces every labelled face scores >= 0.974 (a face
    # cut by the border) and the non-faces MTCNN also proposes (a hand, hair, a pattern)
    # <= 0.916; 0.94 sits between them.
    min_score: float = Field(0.94, ge=0.0, le=1.0, description="Smallest MTCNN face probability kept.")
    detect_max_side: int = Field(
        1280,
        ge=160,
        description="Images whose longest side exceeds this are detected on a downscaled copy.",
    )
    batch_size: int = Field(32, ge=1, description="Faces per embedder forward pass.")

    @field_validator("weights_dir", "dlib_model_path")
    @classmethod
    def _must_exist(cls, path: Path | None) -> Path | None:
        """A model path that names nothing is a typo to report, not a setting to ignore."""
        if path is not None and not path.expanduser().exists():
            raise ValueError("no such file or folder; point it at the weights (or their folder) or unset it")
        return None if path is None else path.expanduser()

    # --- video jobs (inference_service/videos) ------------------------------------------------
    video_dir: Path | None = Field(
        None, description="Folder of video jobs (uploads, results, jobs.sqlite3); default: videos/ beside the gallery."
    )
    max_video_mb: float = Field(500.0, gt=0, description="Largest video upload, in MiB (POST /videos).")
    max_video_seconds: float = Field(600.0, gt=0, description="Longest video accepted, in seconds.")
    video_workers: int = Field(1, ge=1, le=8, description="Video jobs analysed at once.")
    video_retention_hours: float = Field(
        24.0, gt=0, description="Hours a finished job's results are kept before they are removed."
    )
    max_video_jobs: int = Field(100, ge=1, description="Jobs waiting or running at once; more get 503.")
    video_nice: int = Field(
        19, ge=0, le=19, description="CPU priority (nice) of video worker threads, so photo requests go first."
    )
