"""The one exception the pipeline's commands raise for a problem the user can fix.

``python -m pipeline`` prints its message and exits non-zero without a traceback; anything else
that escapes is a bug and keeps its traceback. It is the analysis core's error, so a failure
raised in the core (an unreadable video, say) reaches the user the same way as the CLI's own.
"""

from __future__ import annotations

from inference_service.analysis.errors import AnalysisError


class PipelineError(AnalysisError):
    """A clear, user-facing failure: unreadable video, empty window, no faces, bad arguments."""

    exit_code = 1
