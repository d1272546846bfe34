"""All configured cameras of this process: started with the API, stopped and restarted by name."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..analysis.live import LiveSession
from ..analysis.matcher import EngineMatcher
from ..config import Settings
from ..gallery.factory import is_postgres
from .sources import parse_cameras
from .watcher import CameraWatcher, EventSink, WatchSettings

if TYPE_CHECKING:  # the PostgreSQL driver loads only for a PostgreSQL gallery
    from .leases import Holding, LeaseKeeper, LeaseStore

log = logging.getLogger(__name__)


class UnknownCameraError(KeyError):
    """No camera of that name is configured (the API answers 404)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.detail = f"no camera named {name!r} is configured (FACE_CAMERAS)"


class Cameras:
    """The watchers of ``FACE_CAMERAS``; ``on_events`` receives every camera's track events."""

    def __init__(self, settings: Settings, engine, gallery, on_events: EventSink | None = None) -> None:
        self.settings = settings
        self.leases: LeaseStore | None = None
        self._keeper: LeaseKeeper | None = None
        watch = WatchSettings(
            read_timeout_s=settings.camera_read_timeout_s,
            max_fps=settings.camera_max_fps,
            backoff_max_s=settings.camera_backoff_max_s,
            max_pixels=settings.max_pixels,
            analyse_max_side=settings.camera_analyse_max_side,
        )

        def session() -> LiveSession:
            return LiveSession(EngineMatcher(engine, gallery, workers=1), keep_crops=on_events is not None)

        self.watchers = {
            name: CameraWatcher(name, source, session, watch, on_events)
            for name, source in parse_cameras(settings.cameras).items()
        }

    def start_all(self) -> None:
        """Watch every camera; with a PostgreSQL gallery, those whose lease this replica holds."""
        if not self.watchers:
            return
        if is_postgres(self.settings.gallery):
            from .leases import LeaseKeeper, LeaseStore

            self.leases = LeaseStore(str(self.settings.gallery), self.settings.camera_lease_s)
            for watcher in self.watchers.values():
                watcher.state = "standby"
            self._keeper = LeaseKeeper(self.leases, list(self.watchers), self._hold)
            self._keeper.start()
            log.info("cameras %s: each watched by the replica holding its lease", ", ".join(self.watchers))
            return
        for watcher in self.watchers.values():
            watcher.start()
        log.info("watching %d cameras: %s", len(self.watchers), ", ".join(self.watchers))

    def _hold(self, name: str, holding: Holding) -> None:
        watcher = self.watchers[name]
        if holding == "held":
            watcher.start()
        elif watcher.running or watcher.state != ("standby" if holding == "elsewhere" else "stopped"):
            watcher.stop(state="standby" if holding == "elsewhere" else "stopped")

    def stop_all(self) -> None:
        if self._keeper is not None:
            self._keeper.halt()
        for watcher in self.watchers.values():
            watcher.signal_stop()
        for watcher in self.watchers.values():
            watcher.stop()
        if self._keeper is not None and self.leases is not None:
            self._keeper.release_all()
            self.leases.close()

    def get(self, name: str) -> CameraWatcher:
        watcher = self.watchers.get(name)
        if watcher is None:
            raise UnknownCameraError(name)
        return watcher

    def start(self, name: str) -> dict[str, Any]:
        watcher = self.get(name)
        if self.leases is not None and self._keeper is not None:
            self.leases.set_wanted(name, True)  # on every replica; the first to take the lease watches
            self._keeper.tick()
        else:
            watcher.start()
        return watcher.describe()

    def stop(self, name: str) -> dict[str, Any]:
        watcher = self.get(name)
        if self.leases is not None:
            self.leases.set_wanted(name, False)  # every replica lets go at its next renewal
        watcher.stop()
        return watcher.describe()

    def describe(self) -> list[dict[str, Any]]:
        return [w.describe() for w in self.watchers.values()]
