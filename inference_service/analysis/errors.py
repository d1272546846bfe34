"""The analysis core's one error: a problem with the video or the request that the caller can fix.

It carries a ``kind`` so each caller words it its own way: the API maps kinds to status codes in
``api/errors.py``, the command line prints the message and exits non-zero. Anything else that
escapes the core is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Literal

AnalysisErrorKind = Literal["unreadable", "unsupported", "too_large", "empty", "invalid"]


class AnalysisError(Exception):
    """A clear, user-facing failure: unreadable video, no decodable frame, bad arguments."""

    def __init__(self, message: str, kind: AnalysisErrorKind = "invalid") -> None:
        super().__init__(message)
        self.kind: AnalysisErrorKind = kind
