"""Accuracy evaluation and threshold calibration on labelled faces (``python -m pipeline evaluate|calibrate``).

``data.py`` reads the datasets and embeds every face once (``embedded.py`` loads the engine and a
dataset for a command), ``metrics.py`` is the maths on the similarity scores, ``tracks.py`` the
labelled track evaluation, ``report.py`` the metrics document and the Markdown summaries,
``outputs.py`` the files (pairs CSV, plots, JSON), ``cli.py`` the two commands.
"""
