"""Accuracy evaluation and threshold calibration on labelled faces (``python -m pipeline evaluate|calibrate``).

``data.py`` reads the datasets and embeds every face once, ``metrics.py`` is the maths on the
similarity scores, ``cli.py`` the two commands and their reports.
"""
