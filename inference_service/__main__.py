"""``python -m inference_service``: serve the API on FACE_HOST:FACE_PORT (one process).

Models load here, once, before the server accepts connections; a gallery written by another
embedder, missing weights or a bad setting stop the start with one clear line and exit status 2
instead of a traceback.
"""

from __future__ import annotations

import logging
import os
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def main() -> int:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    log = logging.getLogger("inference_service")

    from pydantic import ValidationError

    from .config import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        log.error("cannot start: %s", describe_invalid_settings(exc))
        return 2

    # Each of the `workers` threads runs its own search; a multi-threaded BLAS under each of them
    # oversubscribes the cores (a 100k-face search went from 4 ms to 20+ ms on a busy 2-core
    # machine). OpenBLAS reads this once, when numpy first loads it, which is just below.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(max(1, settings.threads // settings.workers)))

    from .gallery import GalleryError
    from .gallery.factory import preflight

    # The gallery is checked (read-only) before any model loads: a wrong FACE_GALLERY fails in
    # a second, with nothing but its one line on stderr and nothing written to the file.
    try:
        preflight(settings.gallery, None if settings.embedder == "auto" else settings.embedder)
    except GalleryError as exc:
        log.error("cannot start: %s", exc)
        return 2

    import uvicorn

    from .analysis.engine_loader import load_engine
    from .api import create_app, open_gallery

    try:
        engine = load_engine(settings, gallery=settings.gallery, concurrent_callers=settings.workers)
        gallery = open_gallery(settings, engine)
    except RuntimeError as exc:  # a GalleryError, missing weights, FACE_DEVICE=cuda without a GPU
        log.error("cannot start: %s", exc)
        return 2

    app = create_app(settings, engine=engine, gallery=gallery)
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            workers=1,  # one process: the models and the gallery live in this process's memory
            log_config=None,  # keep the format configured above
            proxy_headers=False,
        )
    finally:
        gallery.close()
    return 0


SECRET_SETTINGS = {"API_KEY", "API_KEYS", "READ_API_KEY"}


def describe_invalid_settings(exc) -> str:
    """pydantic's multi-line report as one line: each bad setting by its variable name."""
    parts = []
    for error in exc.errors():
        field = "_".join(str(part) for part in error["loc"]).upper()
        message = error["msg"].removeprefix("Value error, ")
        shown = "***" if field in SECRET_SETTINGS else error.get("input")  # keys stay out of logs
        parts.append(f"FACE_{field}={shown!s}: {message}" if field else message)
    return "; ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
