"""``python -m web_frontend`` is served by waitress with WEB_THREADS threads, and stops cleanly on SIGTERM."""

from __future__ import annotations

import concurrent.futures
import urllib.request

from support import live_servers
from support.live_servers import free_port


def test_the_site_runs_under_waitress_and_stops_on_sigterm(tmp_path):
    # No API behind it: /health is the site's own, and the pages answer a readable 502.
    web = live_servers.start_web(tmp_path, f"http://127.0.0.1:{free_port()}", WEB_THREADS="3")
    try:
        with urllib.request.urlopen(web.url + "/health", timeout=5) as response:
            assert response.headers["Server"] == "faces-web"  # waitress's ident, not Werkzeug's
        # more requests at once than threads: waitress queues them, every one is answered
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: live_servers.answers(web.url + "/health", timeout=10), range(16)))
        assert all(statuses)
        assert "(waitress, 3 threads)" in web.log_tail()
    finally:
        web.proc.terminate()
        assert web.proc.wait(timeout=20) == 0
    assert "stopped" in web.log_tail()
