"""Video jobs: uploaded videos analysed by the analysis core's annotation in the API's own process.

``store`` records the jobs (SQLite beside a SQLite gallery, PostgreSQL beside a PostgreSQL one), ``runner``
runs them on bounded low-priority workers and removes them after retention, ``upload`` receives
a video onto disk, ``summary`` and ``tracks`` read a finished job's results.
"""

from .runner import VideoJobs

__all__ = ["VideoJobs"]
