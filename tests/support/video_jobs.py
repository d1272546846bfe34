"""Video jobs on a live API: upload a clip, enroll the stage clip's performer, wait for a job's state."""

from __future__ import annotations

import time
from pathlib import Path

import requests

KEY = "video-test-key"
AUTH = {"X-API-Key": KEY}
MIRANDA = "lin_manuel_miranda"


JOB_TIMEOUT_S = 240.0


def wait_for(api_url: str, job_id: str, until, timeout: float = JOB_TIMEOUT_S) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = requests.get(f"{api_url}/videos/{job_id}", timeout=30).json()
        if until(job):
            return job
        assert time.monotonic() < deadline, f"job still {job.get('status')}: {job}"
        time.sleep(0.5)


def upload(api_url: str, path: Path, headers=AUTH, name: str | None = None) -> requests.Response:
    with open(path, "rb") as fh:
        return requests.post(
            f"{api_url}/videos", files={"video": (name or path.name, fh, "video/mp4")}, headers=headers, timeout=120
        )


def enroll_miranda(api_url: str, faces_dir: Path) -> None:
    with open(faces_dir / "gallery" / MIRANDA / "1.png", "rb") as fh:
        r = requests.post(f"{api_url}/identities/{MIRANDA}/faces", files={"image": fh}, headers=AUTH, timeout=120)
    assert r.status_code == 201, r.text


def truncated_copy(source: Path, target: Path, keep: float = 0.5) -> Path:
    """``source`` remuxed with its index first (``faststart``), then cut to ``keep`` of its bytes:
    a file whose header declares every frame but whose data ends early, as an interrupted copy."""
    import av

    whole = target.with_suffix(".whole.mp4")
    with av.open(str(source)) as src, av.open(str(whole), "w", options={"movflags": "faststart"}) as dst:
        stream = src.streams.video[0]
        out = dst.add_stream_from_template(stream)
        for packet in src.demux(stream):
            if packet.dts is None:
                continue
            packet.stream = out
            dst.mux(packet)
    data = whole.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])
    whole.unlink()
    return target
