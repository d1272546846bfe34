"""One camera watched: a reader thread decoding the stream, an analyser thread naming its faces.

The reader never waits for the analyser: each decoded frame replaces the one waiting in a
:class:`~inference_service.analysis.live.LatestSlot` (the replaced one counts as dropped), so
the analysis is always of the newest frame and the lag cannot grow. The analyser takes at most
``max_fps`` frames a second (faces move little in a tenth of a second; the rest of the CPU is
left to photo requests). A stream that fails to open, ends or stalls past the read timeout is
reopened after a backoff doubling from 1 s to ``backoff_max_s``; the state says so meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from ..analysis.live import LatestSlot, LiveSession, TrackEvent
from .reader import open_frames
from .sources import redacted

log = logging.getLogger(__name__)

State = Literal["connecting", "live", "reconnecting", "stopped", "standby"]
RATE_WINDOW_S = 5.0  # per-second rates are averaged over this many seconds
BACKOFF_FIRST_S = 1.0
LOST_AFTER_S = 10.0  # no frame analysed for this long: the tracks in view end (``left``)


@dataclass(frozen=True)
class WatchSettings:
    read_timeout_s: float = 10.0
    max_fps: float = 10.0
    backoff_max_s: float = 30.0
    max_pixels: int = 40_000_000
    analyse_max_side: int = 640


class RateMeter:
    """Events per second over the last :data:`RATE_WINDOW_S` seconds, and a running total."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        self.total = 0

    def tick(self, n: int = 1, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self.total += n
            self._times.extend([now] * n)
            self._trim(now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            return len(self._times) / RATE_WINDOW_S

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - RATE_WINDOW_S:
            self._times.popleft()


EventSink = Callable[[str, Sequence[TrackEvent]], None]


class CameraWatcher:
    """``session_factory()`` makes a fresh :class:`LiveSession` (at each start, and after the stream
    was gone for :data:`LOST_AFTER_S`);
    ``on_events(camera, events)`` receives what the sessions tell (called on the analyser thread;
    it must not block for long)."""

    def __init__(
        self,
        name: str,
        source: str,
        session_factory: Callable[[], LiveSession],
        settings: WatchSettings,
        on_events: EventSink | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.session_factory = session_factory
        self.settings = settings
        self.on_events = on_events
        self.state: State = "stopped"
        self.since = time.time()
        self.last_error: str | None = None
        self.size: tuple[int, int] | None = None
        self.lag_s: float | None = None
        self.frames_in = RateMeter()
        self.analysed = RateMeter()
        self.dropped = RateMeter()
        self._slot: LatestSlot[tuple[Any, float]] = LatestSlot()
        self._session: LiveSession | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    # --- control ------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if any(t.is_alive() for t in self._threads):
                return
            self._stop = threading.Event()
            self._set_state("connecting")
            self._threads = [
                threading.Thread(
                    target=self._read_loop, args=(self._stop,), name=f"camera-{self.name}-read", daemon=True
                ),
                threading.Thread(
                    target=self._analyse_loop, args=(self._stop,), name=f"camera-{self.name}", daemon=True
                ),
            ]
            for thread in self._threads:
                thread.start()

    def signal_stop(self) -> None:
        """Ask both threads to stop without waiting (``stop`` then waits), so that several cameras
        stop at once rather than one read timeout after another."""
        self._stop.set()

    def stop(self, timeout: float | None = None, state: State = "stopped") -> None:
        """Stop both threads; waits up to the read timeout for a blocked read to give up.
        ``standby``: another replica watches the camera (its lease)."""
        with self._lock:
            self._stop.set()
            threads, self._threads = self._threads, []
        wait = self.settings.read_timeout_s + 5 if timeout is None else timeout
        for thread in threads:
            thread.join(wait)
        self._set_state(state)

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def describe(self) -> dict[str, Any]:
        session = self._session
        present = [
            {"track_id": f.track_id, "identity": f.identity, "similarity": round(f.similarity, 4)}
            for f in (session.present() if session is not None else [])
        ]
        return {
            "name": self.name,
            "source": redacted(self.source),
            "state": self.state,
            "since": round(self.since, 3),
            "last_error": self.last_error,
            "width": self.size[0] if self.size else None,
            "height": self.size[1] if self.size else None,
            "fps_in": round(self.frames_in.rate(), 2),
            "fps_analysed": round(self.analysed.rate(), 2),
            "fps_dropped": round(self.dropped.rate(), 2),
            "lag_s": None if self.lag_s is None else round(self.lag_s, 3),
            "frames_in": self.frames_in.total,
            "frames_analysed": self.analysed.total,
            "frames_dropped": self.dropped.total,
            "present": present,
        }

    # --- threads ------------------------------------------------------------------------------
    def _set_state(self, state: State, error: str | None = None) -> None:
        if state != self.state:
            log.info("camera %s: %s%s", self.name, state, f" ({error})" if error else "")
            self.state = state
            self.since = time.time()
        if error is not None:
            self.last_error = error

    def _read_loop(self, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                for frame in open_frames(self.source, self.settings.read_timeout_s):
                    if stop.is_set():
                        return
                    if frame.width * frame.height > self.settings.max_pixels:
                        raise ValueError(f"frames of {frame.width}x{frame.height} exceed FACE_MAX_PIXELS")
                    if self.state != "live":
                        self._set_state("live")
                        failures = 0
                    self.frames_in.tick()
                    self._slot.put((frame, time.monotonic()))
                raise EOFError("the stream ended")
            except Exception as exc:  # any failure of a stream is a reason to reconnect, never to die
                if stop.is_set():
                    return
                delay = min(self.settings.backoff_max_s, BACKOFF_FIRST_S * 2**failures)
                failures += 1
                self._set_state("reconnecting", f"{_describe_error(exc)}; retrying in {delay:g} s")
                stop.wait(delay)

    def _analyse_loop(self, stop: threading.Event) -> None:
        session = self._session = self.session_factory()
        last_analysed = time.monotonic()
        try:
            while not stop.is_set():
                item = self._slot.take(timeout=0.5)
                self.dropped.tick(self._slot.dropped_since_last())
                if item is None:
                    # No frame for a while (the stream is gone or stalled): whoever was in view has
                    # left as far as anyone can tell. A short outage keeps the tracks, so a camera
                    # that reconnects within LOST_AFTER_S tells no one appeared twice.
                    if session.tracker.active and time.monotonic() - last_analysed > LOST_AFTER_S:
                        self._emit(session.close())
                        session = self._session = self.session_factory()
                    continue
                frame, arrived = item
                started = time.monotonic()
                full = frame.to_ndarray(format="rgb24")
                self.size = (frame.width, frame.height)
                analysed, original = _analysed(full, self.settings.analyse_max_side)
                result = session.analyse(analysed, original=original)
                last_analysed = time.monotonic()
                self.analysed.tick()
                self.lag_s = last_analysed - arrived
                self._emit(result.events)
                pause = 1.0 / self.settings.max_fps - (time.monotonic() - started)
                if pause > 0:
                    stop.wait(pause)
        except Exception:
            log.exception("camera %s: the analysis failed; the camera is stopped", self.name)
            self._set_state("stopped", "the analysis failed (see the service log)")
            stop.set()
        finally:
            self._emit(session.close())
            self._session = None

    def _emit(self, events: Sequence[TrackEvent]) -> None:
        if events and self.on_events is not None:
            try:
                self.on_events(self.name, events)
            except Exception:
                log.exception("camera %s: storing %d events failed", self.name, len(events))


def _analysed(full: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray | None]:
    """``(frame to analyse, original)``: a frame larger than ``max_side`` is analysed on a
    downscaled copy (detection's cost grows with the pixels), its crops cut from the original."""
    h, w = full.shape[:2]
    if max(h, w) <= max_side:
        return full, None
    scale = max_side / max(h, w)
    small = cv2.resize(full, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return small, full


def _describe_error(exc: Exception) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text}" if exc.__class__.__name__ not in text else text
