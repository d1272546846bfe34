"""``python -m web_frontend``: serve the site on ``WEB_HOST``:``WEB_PORT`` (default 127.0.0.1:5000).

Served by waitress, a production WSGI server in pure Python (no compiler, nothing but itself in
the web image), with ``WEB_THREADS`` worker threads: the site forwards requests to the API and
draws boxes, so its threads mostly wait. SIGTERM (``docker stop``, ``scripts/run.sh`` on Ctrl-C)
shuts it down cleanly; as PID 1 in a container Python would otherwise ignore it.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import sys

from pydantic import ValidationError
from waitress import create_server

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
    try:
        server = create_server(app, host=settings.host, port=settings.port, threads=settings.threads, ident="faces-web")
    except OSError as exc:  # the port is taken, the address is not this machine's
        log.error("cannot listen on %s:%d: %s", settings.host, settings.port, exc.strerror or exc)
        return 1

    def stop(signum: int, _frame: object) -> None:
        log.info("stopping (signal %d)", signum)
        # waitress's run() ends on SystemExit from its loop: it stops its threads and closes the sockets.
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "site on http://%s:%s (waitress, %d threads) using the face API at %s (upload limit %g MB, API key %s, %s)",
        settings.host,
        server.effective_port,
        settings.threads,
        settings.api_url,
        settings.max_upload_mb,
        "set" if settings.api_key else "not set",
        "login required for all but Recognize" if settings.password else "no login: WEB_PASSWORD not set",
    )
    if settings.password is None and not _loopback(settings.host):
        log.warning(
            "WEB_HOST=%s accepts connections from other machines (unless a firewall or a loopback-only "
            "port mapping stops them) and WEB_PASSWORD is not set: anyone who reaches the site can enroll "
            "and delete people with its API key",
            settings.host,
        )
    server.run()  # returns after stop()
    server.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
