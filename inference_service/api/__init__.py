"""The HTTP API (FastAPI) over the face engine and the gallery."""
from .app import create_app, load_engine, open_gallery

__all__ = ["create_app", "load_engine", "open_gallery"]
