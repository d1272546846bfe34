"""Events to MQTT (``FACE_MQTT_URL``), the protocol home-automation systems already listen to.

Topics, under the URL's path as prefix (default ``faces``):

* ``<prefix>/<camera>/event``: each event's JSON (QoS 1, not retained);
* ``<prefix>/<camera>/present``: who is in view now, retained, so a subscriber arriving later
  learns it at once: ``{"camera", "identities": [...named...], "unknown": n, "at"}``;
* ``<prefix>/status``: ``online``, retained, and ``offline`` as the broker's last will when the
  service goes away without saying so.

paho-mqtt runs its own network thread and reconnects by itself; ``publish`` only queues (at most
:data:`MAX_QUEUED` messages while the broker is away), so publishing never blocks an analysis.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)

MAX_QUEUED = 1000


class MqttPublisher:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("FACE_MQTT_URL must be mqtt://[user:password@]host[:port][/prefix] (or mqtts://)")
        self.prefix = parts.path.strip("/") or "faces"
        self.published = 0
        self.failures = 0
        self._present: dict[str, dict[int, str | None]] = {}  # camera -> track id -> identity
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"faces-{uuid.uuid4().hex[:8]}")
        self.client.max_queued_messages_set(MAX_QUEUED)
        if parts.username:
            self.client.username_pw_set(parts.username, parts.password)
        if parts.scheme == "mqtts":
            self.client.tls_set()
        self.client.will_set(f"{self.prefix}/status", "offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.reconnect_delay_set(1, 30)
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.client.connect_async(parts.hostname, port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT: the broker refused the connection: %s", reason_code)
            return
        client.publish(f"{self.prefix}/status", "online", qos=1, retain=True)

    def submit(self, event: dict[str, Any]) -> None:
        camera = event["camera"]
        self._publish(f"{self.prefix}/{camera}/event", json.dumps(event), retain=False)
        with self._lock:
            tracks = self._present.setdefault(camera, {})
            if event["type"] == "left":
                # a named person's visit may span several tracks: they all leave with them
                for track_id in [
                    t for t, who in tracks.items() if t == event["track_id"] or (who and who == event["identity"])
                ]:
                    del tracks[track_id]
            else:
                tracks[event["track_id"]] = event["identity"]
            named = sorted({who for who in tracks.values() if who})
            unknown = sum(1 for who in tracks.values() if who is None)
        present = {"camera": camera, "identities": named, "unknown": unknown, "at": event["at"]}
        self._publish(f"{self.prefix}/{camera}/present", json.dumps(present), retain=True)

    def _publish(self, topic: str, payload: str, retain: bool) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc == mqtt.MQTT_ERR_SUCCESS or info.rc == mqtt.MQTT_ERR_NO_CONN:
            self.published += 1  # queued; paho sends it once (re)connected
        else:
            self.failures += 1

    def describe(self) -> dict[str, Any]:
        return {
            "connected": self.client.is_connected(),
            "prefix": self.prefix,
            "published": self.published,
            "failures": self.failures,
        }

    def close(self) -> None:
        self.client.publish(f"{self.prefix}/status", "offline", qos=1, retain=True)
        self.client.disconnect()
        self.client.loop_stop()
