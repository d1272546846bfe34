"""The one exception the pipeline's commands raise for a problem the user can fix.

``python -m pipeline`` prints its message and exits non-zero without a traceback; anything else
that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class PipelineError(Exception):
    """A clear, user-facing failure: unreadable video, empty window, no faces, bad arguments."""

    exit_code = 1
