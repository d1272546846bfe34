"""Enrolled identities: in-memory search over a persistent store."""
from .gallery import Candidate, Gallery, InvalidNameError, Recognition, validate_name
from .store import FaceRecord, GalleryMismatchError, GalleryStore, MemoryStore, SQLiteStore, stored_embedder

__all__ = [
    "Candidate",
    "FaceRecord",
    "Gallery",
    "GalleryMismatchError",
    "GalleryStore",
    "InvalidNameError",
    "MemoryStore",
    "Recognition",
    "SQLiteStore",
    "stored_embedder",
    "validate_name",
]
