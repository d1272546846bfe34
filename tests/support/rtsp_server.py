"""A small RTSP server for the camera tests, run by Debian's python3 (GStreamer's RTSP server
through PyGObject, packages gir1.2-gst-rtsp-server-1.0 and python3-gi; .ci/run installs them).

    /usr/bin/python3 tests/support/rtsp_server.py PORT '/tmp/frames/%05d.jpg' FPS [WIDTH HEIGHT]

serves ``rtsp://127.0.0.1:PORT/stream``: the numbered JPEG frames, looped without end, at FPS,
encoded as H.264 (x264, zero latency) like a network camera's main stream. Each client gets the
stream from the first frame. Runs until killed.
"""

from __future__ import annotations

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    port, pattern, fps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    scale, size = "", ""
    if len(sys.argv) > 5:  # two caps filters in a row do not parse: the size joins the format's
        scale, size = "! videoscale ", f",width={sys.argv[4]},height={sys.argv[5]}"
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( multifilesrc location="{pattern}" loop=true index=0 caps="image/jpeg,framerate={fps}/1" '
        f"! jpegdec ! videoconvert {scale}! video/x-raw,format=I420{size} "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bitrate=2000 "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    server.get_mount_points().add_factory("/stream", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on port {port}")
    print(f"rtsp://127.0.0.1:{port}/stream", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
