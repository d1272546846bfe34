"""With a PostgreSQL gallery, each camera is watched by one replica at a time: a lease.

Table ``camera_leases`` holds, per camera, the replica holding it, when its lease expires (the
database's clock, so replicas with skewed clocks agree) and whether the camera is wanted at all
(``POST /cameras/{name}/stop`` on any replica stops it everywhere). Every replica's
:class:`LeaseKeeper` renews what it holds and tries to take what nobody holds every
``lease_s / 3`` seconds: a camera whose replica died is taken over once its lease expired. A
replica that finds its lease taken (it was cut off for longer than the lease) stops watching.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

from ..gallery.errors import GalleryError
from ..gallery.pg_connect import connect_pool, pooled_cursor
from ..gallery.urls import redact

log = logging.getLogger(__name__)

Holding = Literal["held", "elsewhere", "unwanted"]
SCHEMA_LOCK = 0x66616365_7603
NOW = "extract(epoch FROM clock_timestamp())"
SCHEMA = """
CREATE TABLE IF NOT EXISTS camera_leases (
    camera text PRIMARY KEY,
    holder text,
    expires_at double precision NOT NULL DEFAULT 0,
    wanted boolean NOT NULL DEFAULT true
);
"""
# Take the lease when this replica holds it already or it expired, and the camera is wanted.
_ACQUIRE = f"""
INSERT INTO camera_leases (camera, holder, expires_at) VALUES (%(camera)s, %(me)s, {NOW} + %(lease)s)
ON CONFLICT (camera) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
WHERE camera_leases.wanted AND (camera_leases.holder = EXCLUDED.holder OR camera_leases.expires_at < {NOW})
RETURNING holder
"""


class LeaseStore:
    def __init__(self, url: str, lease_s: float) -> None:
        self.where = redact(url)
        self.lease_s = lease_s
        self.me = uuid.uuid4().hex[:12]
        self._pool = connect_pool(
            url, name="face-camera-leases", max_size=2, what="the camera leases' database", row_factory=dict_row
        )
        with pooled_cursor(self._pool, self.where) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            cur.execute(SCHEMA)

    def acquire(self, camera: str) -> Holding:
        """Take or renew the camera's lease: ``held``, else ``elsewhere`` (another replica holds it)
        or ``unwanted`` (stopped over the API)."""
        with pooled_cursor(self._pool, self.where) as cur:
            cur.execute(_ACQUIRE, {"camera": camera, "me": self.me, "lease": self.lease_s})
            if cur.fetchone() is not None:
                return "held"
            cur.execute("SELECT wanted FROM camera_leases WHERE camera = %s", (camera,))
            row: Any = cur.fetchone()
            return "elsewhere" if row is None or row["wanted"] else "unwanted"

    def release(self, camera: str) -> None:
        with pooled_cursor(self._pool, self.where) as cur:
            cur.execute("UPDATE camera_leases SET expires_at = 0 WHERE camera = %s AND holder = %s", (camera, self.me))

    def set_wanted(self, camera: str, wanted: bool) -> None:
        with pooled_cursor(self._pool, self.where) as cur:
            cur.execute(
                "INSERT INTO camera_leases (camera, wanted) VALUES (%s, %s) "
                "ON CONFLICT (camera) DO UPDATE SET wanted = EXCLUDED.wanted",
                (camera, wanted),
            )

    def close(self) -> None:
        self._pool.close()


class LeaseKeeper:
    """Every ``lease_s / 3`` s, ``hold(camera, holding)`` for each camera: ``held`` by this replica,
    or not (``elsewhere``, ``unwanted``)."""

    def __init__(self, store: LeaseStore, cameras: list[str], hold: Callable[[str, Holding], None]) -> None:
        self.store = store
        self.cameras = cameras
        self.hold = hold
        self._renewed: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera-leases", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def tick(self) -> None:
        for camera in self.cameras:
            try:
                holding = self.store.acquire(camera)
            except (GalleryError, psycopg.Error) as exc:
                # Unreachable database: keep watching what we hold until our lease would have
                # expired (no other replica can take it before then), then let go.
                log.warning("camera leases: %s", exc)
                if time.monotonic() - self._renewed.get(camera, 0.0) > self.store.lease_s:
                    self.hold(camera, "elsewhere")
                continue
            if holding == "held":
                self._renewed[camera] = time.monotonic()
            self.hold(camera, holding)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.store.lease_s / 3)

    def halt(self) -> None:
        """No more renewals (the caller then stops its watchers and calls :meth:`release_all`)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def release_all(self) -> None:
        for camera in self.cameras:
            try:
                self.store.release(camera)  # a clean stop hands the cameras over at once
            except (GalleryError, psycopg.Error):
                pass
