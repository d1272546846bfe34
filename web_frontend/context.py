"""The one way a view reaches the app's API client and settings (``create_app`` puts both in ``app.extensions``).

Views call these instead of closing over the app, so every view module can be a blueprint and tests
can hand ``create_app`` a client with a fake transport.
"""

from __future__ import annotations

from flask import current_app

from face_client import FaceClient

from .config import WebSettings

API_CLIENT = "face_api"
SETTINGS = "web_settings"


def face_api() -> FaceClient:
    """The app's client of the face API."""
    return current_app.extensions[API_CLIENT]


def web_settings() -> WebSettings:
    return current_app.extensions[SETTINGS]
