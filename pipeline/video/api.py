"""The pipeline's client of the face API (``--api URL``): the project's one client, ``face_client``."""

from __future__ import annotations

import os

from face_client import ApiError, FaceClient

from ..errors import PipelineError

TIMEOUT_S = 120.0  # an enrollment of several photos on a busy CPU can take a while


def api_client(url: str) -> FaceClient:
    """A client of the API at ``url`` with ``FACE_API_KEY`` from the environment; one
    ``requests`` session per thread, since annotate sends frames in parallel."""
    try:
        return FaceClient(url, api_key=os.environ.get("FACE_API_KEY"), timeout=TIMEOUT_S)
    except ValueError:
        raise PipelineError(f"--api must be an http(s) URL, got {url!r}") from None


def explain(exc: ApiError) -> str:
    """One line for the command line: could not reach it, or what it answered."""
    if not exc.answered:
        return f"cannot reach the API: {exc.message}"
    if exc.api_status is not None and exc.api_status >= 400:
        return f"the API answered {exc.api_status}: {exc.detail or exc.message}"
    return exc.message
