"""The event log: what cameras tell, stored with one face crop each, listed, streamed, expired,
erased with the person, and handed to publishers (webhooks, MQTT) that must never block it.

``FACE_EVENT_RETENTION_DAYS`` bounds how long an event is kept (a sweeper thread deletes older
ones every hour); with ``FACE_EVENT_UNKNOWN_FACES=0`` no crop of an unknown face is stored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..analysis.live import TrackEvent
from ..config import Settings
from .store import EVENTS_DB, EventFilter, EventStore, NewEvent, SQLiteEventStore

log = logging.getLogger(__name__)

CROP_MAX_SIDE = 256  # enough to recognise a person on the Cameras page; small rows
SWEEP_EVERY_S = 3600.0

Subscriber = Callable[[dict[str, Any]], None]


def open_event_log(settings: Settings, gallery: Any = None) -> EventLog:
    """The store for these settings, the webhooks and MQTT they name, the retention sweeper running
    (which also erases the events of people ``gallery`` no longer holds)."""
    from .mqtt import MqttPublisher
    from .webhooks import Webhooks, parse_webhooks

    events = EventLog(open_event_store(settings), settings.event_retention_days, settings.event_unknown_faces)
    events.gallery, events.sweep_every_s = gallery, min(SWEEP_EVERY_S, settings.retention_sweep_s)
    urls = parse_webhooks(settings.webhooks)
    if urls:
        events.webhooks = Webhooks(urls, settings.webhook_secret, settings.webhook_timeout_s, settings.webhook_retries)
        events.subscribers.append(events.webhooks.submit)
    if settings.mqtt_url:
        events.mqtt = MqttPublisher(settings.mqtt_url)
        events.subscribers.append(events.mqtt.submit)
    return events.start()


def open_event_store(settings: Settings) -> EventStore:
    """PostgreSQL beside a PostgreSQL gallery, else ``events.sqlite3`` beside the gallery file."""
    from ..gallery.factory import is_postgres, sqlite_path

    if is_postgres(settings.gallery):
        from .pg_store import PostgresEventStore

        return PostgresEventStore(str(settings.gallery))
    return SQLiteEventStore(Path(sqlite_path(settings.gallery)).parent / EVENTS_DB)


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def public(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as the API shows it."""
    return {
        "id": int(row["id"]),
        "camera": row["camera"],
        "type": row["type"],
        "identity": row["identity"],
        "previous": row["previous"],
        "track_id": int(row["track_id"]),
        "similarity": round(float(row["similarity"]), 4),
        "seconds_in_view": round(float(row["seconds_in_view"]), 3),
        "at": iso(float(row["at"])),
        "face": f"/events/{int(row['id'])}/face" if row.get("has_face") else None,
    }


def encode_crop(rgb: np.ndarray | None) -> bytes | None:
    if rgb is None or rgb.size == 0:
        return None
    h, w = rgb.shape[:2]
    scale = min(1.0, CROP_MAX_SIDE / max(h, w))
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return data.tobytes() if ok else None


class EventLog:
    def __init__(self, store: EventStore, retention_days: float, unknown_faces: bool) -> None:
        self.store = store
        self.retention_s = retention_days * 86400.0
        self.unknown_faces = unknown_faces
        self.subscribers: list[Subscriber] = []
        self.webhooks: Any = None  # webhooks.Webhooks, when FACE_WEBHOOKS names any
        self.gallery: Any = None  # people no longer in it have their events erased by the sweeper
        self.sweep_every_s = SWEEP_EVERY_S
        self.mqtt: Any = None  # mqtt.MqttPublisher, when FACE_MQTT_URL is set
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- writing ------------------------------------------------------------------------------
    def record(self, camera: str, events: Sequence[TrackEvent]) -> list[dict[str, Any]]:
        """Store a camera's events (called on its analyser thread), then tell the subscribers."""
        rows = [
            NewEvent(
                camera=camera,
                type=e.type,
                identity=e.identity,
                previous=e.previous,
                track_id=e.track_id,
                similarity=float(e.similarity),
                seconds_in_view=float(e.seconds_in_view),
                at=e.at,
                face=encode_crop(e.face) if (e.identity is not None or self.unknown_faces) else None,
            )
            for e in events
        ]
        if not rows:
            return []
        ids = self.store.add(rows)
        stored = [public({**row.__dict__, "id": i, "has_face": row.face is not None}) for i, row in zip(ids, rows)]
        for event in stored:
            for subscriber in self.subscribers:
                try:
                    subscriber(event)
                except Exception:
                    log.exception("an event subscriber failed")
        return stored

    def erase_identity(self, name: str) -> int:
        """Every event that names ``name`` (as identity or as the name a rename replaced), crops included."""
        erased = self.store.erase_identity(name)
        if erased:
            log.info("erased %d live events of an erased identity", erased)
        return erased

    def follow_identity(self, old: str, new: str) -> None:
        """A person renamed or merged into another: their events name the new identity (else the
        sweeper would take the old name's absence for an erasure)."""
        self.store.reassign(old, new)

    def erase_the_forgotten(self) -> int:
        """Events naming someone the gallery no longer holds (erased by its retention, on another
        replica, or while this process was down): erased now."""
        if self.gallery is None:
            return 0
        return sum(self.store.erase_identity(n) for n in self.store.named() if self.gallery.faces_of(n) is None)

    # --- reading ------------------------------------------------------------------------------
    def page(self, where: EventFilter, limit: int) -> list[dict[str, Any]]:
        return [public(r) for r in self.store.query(where, limit, newest_first=True)]

    def of_identity(self, name: str, limit: int = 10_000) -> list[dict[str, Any]]:
        """Every event naming ``name`` (newest first), for a person's export."""
        return self.page(EventFilter(identity=name), limit)

    def after(self, after_id: int, limit: int = 100) -> list[dict[str, Any]]:
        return [public(r) for r in self.store.query(EventFilter(after_id=after_id), limit, newest_first=False)]

    def face(self, event_id: int) -> bytes | None:
        return self.store.face(event_id)

    def latest_id(self) -> int:
        return self.store.latest_id()

    # --- retention ------------------------------------------------------------------------------
    def sweep(self, now: float | None = None) -> int:
        return self.store.expire((time.time() if now is None else now) - self.retention_s)

    def start(self) -> EventLog:
        self._thread = threading.Thread(target=self._run, name="event-retention", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                expired = self.sweep()
                if expired:
                    log.info("event retention: %d events older than the retention removed", expired)
                forgotten = self.erase_the_forgotten()
                if forgotten:
                    log.info("erased %d events of people the gallery no longer holds", forgotten)
            except Exception:
                log.exception("event retention sweep failed")
            self._stop.wait(self.sweep_every_s)

    def delivery(self) -> dict[str, Any]:
        """How the publishers fare: deliveries, failures, drops."""
        return {
            "webhooks": self.webhooks.describe() if self.webhooks is not None else [],
            "mqtt": self.mqtt.describe() if self.mqtt is not None else None,
        }

    def close(self) -> None:
        for publisher in (self.webhooks, self.mqtt):
            if publisher is not None:
                publisher.close()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.store.close()
