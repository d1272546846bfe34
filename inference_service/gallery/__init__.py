"""Enrolled identities: in-memory search over a persistent store."""

from .errors import (
    GalleryError,
    GalleryFullError,
    GalleryMismatchError,
    GalleryOpenError,
    GalleryUnavailableError,
)
from .factory import open_store, stored_embedder
from .gallery import Candidate, Gallery, Recognition
from .memory_store import MemoryStore
from .names import InvalidNameError, name_key, validate_name
from .sqlite_store import SQLiteStore
from .store import FaceRecord, FaceTable, GalleryStore

__all__ = [
    "Candidate",
    "FaceRecord",
    "FaceTable",
    "Gallery",
    "GalleryError",
    "GalleryFullError",
    "GalleryMismatchError",
    "GalleryOpenError",
    "GalleryStore",
    "GalleryUnavailableError",
    "InvalidNameError",
    "MemoryStore",
    "Recognition",
    "SQLiteStore",
    "name_key",
    "open_store",
    "stored_embedder",
    "validate_name",
]
