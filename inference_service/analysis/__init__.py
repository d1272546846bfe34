"""The analysis core: what the API's video jobs, the command line and live video share.

Reading and probing video files, shot cuts, the tracker and the rule that names a track once from
all its faces, face quality, drawing and writing annotated video, ``annotate_video`` with its hooks,
and the matcher over an engine and a gallery. It sits above ``engine`` and ``gallery`` and below
the API and the CLI; it raises :class:`~.errors.AnalysisError` and knows nothing of HTTP.
"""
