"""The HTTP API (FastAPI) over the face engine and the gallery."""

from ..analysis.engine_loader import load_engine
from .app import create_app, open_gallery

__all__ = ["create_app", "load_engine", "open_gallery"]
