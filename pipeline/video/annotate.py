"""``annotate``: the command that tracks and names faces through a video (``python -m pipeline annotate``).

The work is the analysis core's ``annotate_video``; this command resolves the video (a path or a
URL) and picks where faces get their candidates: a local gallery or the API.
"""

from __future__ import annotations

from pathlib import Path

from inference_service.analysis.annotate import annotate_video
from inference_service.analysis.matcher import FrameMatcher
from inference_service.analysis.source import probe

from ..errors import PipelineError
from .fetch import open_source


def annotate(
    source: str,
    out: Path,
    api: str | None = None,
    gallery: Path | None = None,
    stride: int | None = None,
    threshold: float | None = None,
    margin: float = 0.02,
    min_faces: int = 3,
    embedder: str | None = None,
    render: bool = True,
) -> dict:
    """Annotate ``source`` into run folder ``out``; returns the timeline."""
    if (api is None) == (gallery is None):
        raise PipelineError("give exactly one of --api URL or --gallery FILE")
    if stride is not None and stride < 1:
        raise PipelineError("--stride must be 1 or more")
    out.mkdir(parents=True, exist_ok=True)
    with open_source(source) as path:
        info = probe(path)
        matcher: FrameMatcher
        if gallery is not None:
            from .matchers import LocalMatcher

            matcher = LocalMatcher(gallery, embedder=embedder, threshold=threshold)
        else:
            from .matchers import ApiMatcher

            assert api is not None
            matcher = ApiMatcher(api, threshold=threshold)
        try:
            return annotate_video(
                path, info, matcher, out, label=source, stride=stride, margin=margin, min_faces=min_faces, render=render
            )
        finally:
            matcher.close()
