"""Start the real API and the real site as subprocesses on free loopback ports (test helper).

Used by test_wiring.py and test_e2e_browser.py and by benchmarks/bench_web.py. Output goes to a
log file (a pipe nobody reads could fill and block the server); a server that dies while
starting fails with the tail of its log.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Debian's Chromium, driven by playwright (tests/conftest.py's ``browser`` fixture)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without FACE_*/WEB_* settings (a developer's shell may set
    some), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACE_", "WEB_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def answers(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    url: str
    log: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start(
    name: str,
    command: list[str],
    env: dict[str, str],
    url: str,
    log_dir: Path,
    timeout: float = 180.0,
    health_path: str = "/health",
) -> Server:
    """Run ``command`` in the repository root and wait until ``url + health_path`` answers 200."""
    log = log_dir / f"{name}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    server = Server(name, proc, url, log)
    deadline = time.monotonic() + timeout
    while not answers(url + health_path):
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} while starting:\n{server.log_tail()}")
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(
                f"{name} did not answer at {url}{health_path} within {timeout:g} s:\n{server.log_tail()}"
            )
        time.sleep(0.25)
    return server


def start_api(log_dir: Path, gallery: Path | str, name: str = "api", **extra: str) -> Server:
    """The real inference API (dlib-resnet: offline, no download), one torch thread.

    ``gallery`` is what FACE_GALLERY takes (a file, or a postgresql:// URL shared by several
    APIs, each started under its own ``name`` so their logs stay apart)."""
    port = free_port()
    defaults = {"FACE_EMBEDDER": "dlib-resnet", "FACE_THREADS": "1"}  # callers may override these
    env = clean_env(FACE_HOST="127.0.0.1", FACE_PORT=str(port), FACE_GALLERY=str(gallery), **{**defaults, **extra})
    return start(name, [sys.executable, "-m", "inference_service"], env, f"http://127.0.0.1:{port}", log_dir)


def start_web(log_dir: Path, api_url: str, **extra: str) -> Server:
    """The real site, talking to ``api_url``."""
    port = free_port()
    env = clean_env(WEB_HOST="127.0.0.1", WEB_PORT=str(port), FACE_API_URL=api_url, **extra)
    return start("web", [sys.executable, "-m", "web_frontend"], env, f"http://127.0.0.1:{port}", log_dir, timeout=60)
