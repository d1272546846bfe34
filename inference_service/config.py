"""All service settings in one place, read from ``FACE_*`` environment variables.

Every other module receives a :class:`Settings` instance instead of reading the environment,
so tests can build engines and apps with explicit settings and nothing depends on import order.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator
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
    api_keys: str | None = Field(
        None,
        description=(
            "More write keys, each with a label the audit trail records: comma-separated label:key "
            "pairs (labels of letters, digits, _ . -). FACE_API_KEY is the key labelled 'default'."
        ),
    )
    max_upload_mb: float = Field(10.0, gt=0, description="Largest accepted upload, in MiB.")
    body_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Seconds a client has to send a request's whole body; slower ones get 408.",
    )
    workers: int = Field(2, ge=1, description="Inference worker threads.")
    queue_size: int = Field(16, ge=1, description="Requests allowed to wait for a worker before the API answers 503.")

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
    index: Literal["auto", "exact", "ivf"] = Field(
        "auto",
        description=(
            "Gallery search: exact (every face), ivf (faiss IVF candidates re-ranked exactly), or "
            "auto (ivf from 250,000 faces, where exact search passes 5 ms per face)."
        ),
    )
    snapshot_dir: Path | None = Field(
        None,
        description=(
            "Folder for the gallery's start-up snapshot (default: beside a SQLite gallery; a PostgreSQL "
            "gallery has one only when this is set, one folder per replica)."
        ),
    )

    # --- people's data ------------------------------------------------------------------------
    require_consent: bool = Field(
        False, description="When true, enrollment without a consent statement is refused (422)."
    )
    retention_days: float | None = Field(
        None,
        gt=0,
        le=36_500,
        description="Default expiry of an identity, in days from its last enrollment (unset: none).",
    )
    retention_sweep_s: float = Field(
        60.0, gt=0, description="Seconds between two sweeps that erase expired identities."
    )
    audit_forget_names: bool = Field(
        False, description="When true, erasing a person also removes their name from earlier audit rows."
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
    batch: Literal["auto", "on", "off"] = Field(
        "auto",
        description=(
            "Requests arriving within FACE_BATCH_WINDOW_MS share one batched detection and embedding "
            "pass: auto = on when the engine runs on CUDA (a CPU serves more with one request per worker)."
        ),
    )
    # A 1080p photo's detection + embedding takes tens of ms on a GPU, so a few ms of waiting
    # costs a lone request little while letting requests of 16 concurrent clients meet.
    batch_window_ms: float = Field(
        4.0, ge=0, le=100, description="Longest a request waits for others to share its pass, in ms."
    )
    batch_max_images: int = Field(16, ge=1, le=256, description="Most images in one shared pass.")
    # README "Flip test-time augmentation": on ../shared/faces it widens the dlib-resnet margin
    # between the lowest same-person and the highest stranger score; it costs a second forward
    # pass per face (the mirror image, in the same batch).
    flip_tta: bool = Field(
        True,
        description="Embed each face and its mirror image and average them (flip test-time augmentation).",
    )

    @field_validator("api_keys")
    @classmethod
    def _labelled_keys(cls, value: str | None) -> str | None:
        """Refuse a malformed list at start-up rather than locking a client out at its first call."""
        if value is not None:
            parse_labelled_keys(value)
        return value

    @model_validator(mode="after")
    def _one_default_key(self) -> Settings:
        if self.api_key and self.api_keys and "default" in parse_labelled_keys(self.api_keys):
            raise ValueError("FACE_API_KEYS may not use the label 'default' while FACE_API_KEY is set")
        return self

    def write_keys(self) -> dict[str, str]:
        """Every write key by its label (``default`` for FACE_API_KEY)."""
        keys = parse_labelled_keys(self.api_keys) if self.api_keys else {}
        if self.api_key:
            keys = {"default": self.api_key, **keys}
        return keys

    @field_validator("weights_dir", "dlib_model_path")
    @classmethod
    def _must_exist(cls, path: Path | None) -> Path | None:
        """A model path that names nothing is a typo to report, not a setting to ignore."""
        if path is not None and not path.expanduser().exists():
            raise ValueError("no such file or folder; point it at the weights (or their folder) or unset it")
        return None if path is None else path.expanduser()

    # --- video jobs (inference_service/videos) ------------------------------------------------
    video_dir: Path | None = Field(
        None,
        description="Folder of video jobs (uploads, results, jobs.sqlite3); default: videos/ beside the gallery. "
        "On PostgreSQL with several replicas it must be one folder they all share.",
    )
    max_video_mb: float = Field(500.0, gt=0, description="Largest video upload, in MiB (POST /videos).")
    max_video_seconds: float = Field(600.0, gt=0, description="Longest video accepted, in seconds.")
    video_workers: int = Field(1, ge=1, le=8, description="Video jobs analysed at once.")
    video_retention_hours: float = Field(
        24.0, gt=0, description="Hours a finished job's results are kept before they are removed."
    )
    max_video_jobs: int = Field(100, ge=1, description="Jobs waiting or running at once; more get 503.")
    video_lease_s: float = Field(
        60.0,
        ge=2,
        le=3600,
        description="PostgreSQL gallery: a running job whose replica sent no heartbeat for this long is taken over.",
    )
    video_nice: int = Field(
        19, ge=0, le=19, description="CPU priority (nice) of video worker threads, so photo requests go first."
    )

    # --- live video (inference_service/api/live.py) ------------------------------------------
    live_max_connections: int = Field(4, ge=1, le=256, description="Open /live WebSocket connections at once.")
    live_max_frame_mb: float = Field(2.0, gt=0, le=16, description="Largest frame (one WebSocket message), in MiB.")
    live_idle_s: float = Field(
        30.0, gt=0, description="A /live connection that sends no frame for this long is closed."
    )
    cameras: str | None = Field(
        None,
        description='Network cameras watched from the start: a JSON object {"name": "rtsp://..." or "http://..." or '
        '"/dev/video0"}, or the path of a file holding one.',
    )
    camera_read_timeout_s: float = Field(10.0, gt=0, description="A camera silent this long is reconnected.")
    camera_max_fps: float = Field(10.0, gt=0, description="Frames analysed per second and camera, at most.")
    # A 1280x720 frame costs /recognize ~0.3 s on 2 loaded cores, a 640x360 one under half that
    # (benchmarks/bench_live.py); faces under ~20 px of the copy (40 px of a 720p frame) go unseen.
    camera_analyse_max_side: int = Field(
        640, ge=160, le=4096, description="Camera frames with a longer side are analysed on a downscaled copy."
    )
    camera_lease_s: float = Field(
        15.0,
        ge=2,
        le=3600,
        description="PostgreSQL gallery: a camera whose replica did not renew its lease this long is taken over.",
    )
    camera_backoff_max_s: float = Field(30.0, gt=0, description="Longest wait between two reconnection attempts.")
    event_retention_days: float = Field(30.0, gt=0, le=36_500, description="Days a camera event is kept.")
    event_unknown_faces: bool = Field(True, description="When false, events of unknown people keep no face crop.")
    webhooks: str | None = Field(
        None, description="URLs every camera event is posted to: a JSON list or comma-separated (http/https)."
    )
    webhook_secret: str | None = Field(None, description="Key of the HMAC-SHA256 signature of webhook bodies.")
    webhook_timeout_s: float = Field(5.0, gt=0, description="Seconds a webhook receiver has to answer.")
    webhook_retries: int = Field(
        5, ge=0, le=20, description="Retries of a failed webhook delivery (backoff 1, 2, 4, ... s)."
    )
    mqtt_url: str | None = Field(
        None, description="mqtt://[user:password@]host[:port][/prefix]: publish camera events and who is present."
    )
    live_ticket_s: float = Field(
        60.0, gt=0, le=3600, description="Seconds a /live ticket (POST /live/tickets) is valid."
    )


_LABEL = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def parse_labelled_keys(text: str) -> dict[str, str]:
    """``label:key,label:key`` as a dict; ValueError naming the first bad pair."""
    keys: dict[str, str] = {}
    for number, pair in enumerate(filter(None, (p.strip() for p in text.split(","))), start=1):
        label, sep, key = pair.partition(":")
        if not sep or not _LABEL.match(label) or not key:
            raise ValueError(f"pair {number} is not label:key (labels: 1-32 of letters, digits, _ . -)")
        if label in keys:
            raise ValueError(f"label {label!r} appears twice")
        keys[label] = key
    return keys
