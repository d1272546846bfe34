"""The video workflow: frames -> faces -> clusters -> naming, and annotate (tracks named against a gallery).

Every step reads and writes a run folder (``rundir.py``); ``source.py`` opens files and URLs.
"""
