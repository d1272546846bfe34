"""Real camera sources for the camera tests: an RTSP server (tests/support/rtsp_server.py run by
Debian's python3) and an HTTP MJPEG server in a thread, both looping frames of the stage clip."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2

SYSTEM_PYTHON = Path("/usr/bin/python3")
RTSP_SCRIPT = Path(__file__).resolve().parent / "rtsp_server.py"
BOUNDARY = "frame"


def clip_jpegs(video: Path, out: Path, start: int, stop: int) -> list[Path]:
    """Frames ``start``..``stop`` of ``video`` as numbered JPEGs in ``out`` (00000.jpg, ...)."""
    out.mkdir(parents=True, exist_ok=True)
    capture = cv2.VideoCapture(str(video))
    paths, index = [], 0
    while index < stop and capture.grab():
        if index >= start:
            ok, frame = capture.retrieve()
            assert ok
            path = out / f"{index - start:05d}.jpg"
            cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
            paths.append(path)
        index += 1
    capture.release()
    return paths


def gstreamer_rtsp_available() -> bool:
    if not SYSTEM_PYTHON.exists():
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return subprocess.run([str(SYSTEM_PYTHON), "-c", probe], capture_output=True, timeout=30).returncode == 0


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class RtspServer:
    """``rtsp://127.0.0.1:PORT/stream`` looping the JPEGs of ``frames`` at ``fps`` (scaled to
    ``size`` when given); kill and restart."""

    def __init__(
        self, port: int, frames: Path, fps: int = 25, log: Path | None = None, size: tuple[int, int] | None = None
    ) -> None:
        self.port, self.frames, self.fps, self.log, self.size = port, frames, fps, log, size
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/stream"

    def start(self, timeout: float = 30.0) -> None:
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        command = [str(SYSTEM_PYTHON), str(RTSP_SCRIPT), str(self.port), str(self.frames / "%05d.jpg"), str(self.fps)]
        command += [str(v) for v in self.size or ()]
        self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the RTSP server did not start (exit {self.proc.poll()})")
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class MjpegServer:
    """``http://127.0.0.1:PORT/video.mjpg``: the JPEGs as multipart/x-mixed-replace at ``fps``,
    looped; ``/page.html`` is a web page (a camera URL that is not a video)."""

    def __init__(self, jpegs: list[bytes], fps: float = 10.0) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/page.html":
                    body = b"<html><body>not a video</body></html>" * 50
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                k = 0
                try:
                    while not server.stopping:
                        data = jpegs[k % len(jpegs)]
                        head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                        self.wfile.write(head.encode() + data + b"\r\n")
                        k += 1
                        time.sleep(1.0 / fps)
                except OSError:
                    return

        self.stopping = False
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video.mjpg"

    def stop(self) -> None:
        self.stopping = True
        self.httpd.shutdown()
        self.httpd.server_close()
