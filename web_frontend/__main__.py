"""``python -m web_frontend``: serve the site on ``WEB_HOST``:``WEB_PORT`` (default 127.0.0.1:5000).

Werkzeug's threaded server: the site only forwards requests to the API and draws boxes, so a few
threads are enough, and it keeps the web image down to Flask, requests, Pillow and pydantic-settings.
SIGTERM (``docker stop``, ``scripts/run.sh`` on Ctrl-C) shuts it down cleanly; as PID 1 in a
container Python would otherwise ignore it.
"""
from __future__ import annotations

import ipaddress
import logging
import signal
import sys
import threading

from pydantic import ValidationError
from werkzeug.serving import make_server

from .app import create_app
from .config import WebSettings


def _loopback(host: str) -> bool:
    """True for an address only this machine can reach (a name is resolved by the OS: "localhost")."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("web_frontend")
    try:
        settings = WebSettings()
    except ValidationError as exc:
        log.error("invalid WEB_*/FACE_* setting: %s", exc)
        return 2
    app = create_app(settings)
    # A port in use: Werkzeug says so in one line and exits with status 1.
    server = make_server(settings.host, settings.port, app, threaded=True)

    def stop(signum: int, _frame: object) -> None:
        log.info("stopping (signal %d)", signum)
        # shutdown() waits for serve_forever to return, so it must not run on the serving thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "site on http://%s:%d using the face API at %s (upload limit %g MB, API key %s, %s)",
        settings.host, server.server_port, settings.api_url, settings.max_upload_mb,
        "set" if settings.api_key else "not set",
        "login required to enroll and delete" if settings.password else "no login: WEB_PASSWORD not set",
    )
    if settings.password is None and not _loopback(settings.host):
        log.warning(
            "WEB_HOST=%s accepts connections from other machines (unless a firewall or a loopback-only "
            "port mapping stops them) and WEB_PASSWORD is not set: anyone who reaches the site can enroll "
            "and delete people with its API key",
            settings.host,
        )
    try:
        server.serve_forever()
    finally:
        server.server_close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
