"""Posting each event to the operator's webhooks (``FACE_WEBHOOKS``), signed, retried, never in the way.

Each URL has its own bounded queue and sender thread: recording an event only puts it in the
queues (a full queue drops the event and counts it), so a slow or dead receiver can never hold
up a camera's analysis. The body is the event's JSON; header ``X-Face-Signature: sha256=<hex>``
is the HMAC-SHA256 of the exact body under ``FACE_WEBHOOK_SECRET``, so a receiver can tell the
events are ours and unaltered; ``X-Face-Event`` is the type and ``X-Face-Delivery`` the event id
(a receiver that got it twice, after a lost answer, can tell). A delivery that fails (no answer
within the timeout, a status other than 2xx) is retried after 1, 2, 4, ... s, ``retries`` times,
then given up; every failure is counted (``GET /events/delivery``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from typing import Any

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000  # events waiting per webhook; a receiver down for long loses the oldest-waiting
BACKOFF_FIRST_S = 1.0


def parse_webhooks(text: str | None) -> list[str]:
    """``FACE_WEBHOOKS``: a JSON list of URLs or comma-separated URLs; ValueError for anything else."""
    if not text or not text.strip():
        return []
    raw = text.strip()
    urls = json.loads(raw) if raw.startswith("[") else [u.strip() for u in raw.split(",") if u.strip()]
    if not isinstance(urls, list) or not all(
        isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls
    ):
        raise ValueError("FACE_WEBHOOKS must list http:// or https:// URLs (a JSON list or comma-separated)")
    return urls


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class Webhook:
    """One receiver: its queue, sender thread and counters."""

    def __init__(self, url: str, secret: str | None, timeout_s: float, retries: int) -> None:
        self.url = url
        self.secret = secret
        self.timeout_s = timeout_s
        self.retries = retries
        self.delivered = 0
        self.failures = 0  # failed attempts, retried or not
        self.given_up = 0
        self.dropped = 0  # events that found the queue full
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_SIZE)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()

    def submit(self, event: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def describe(self) -> dict[str, Any]:
        return {
            "url": self.url.split("?", 1)[0],  # a token in the query string stays private
            "delivered": self.delivered,
            "failures": self.failures,
            "given_up": self.given_up,
            "dropped": self.dropped,
            "queued": self._queue.qsize(),
        }

    def close(self) -> None:
        self._stop.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(self.timeout_s + 1)

    def _run(self) -> None:
        while not self._stop.is_set():
            event = self._queue.get()
            if event is None:
                return
            body = json.dumps(event, separators=(",", ":")).encode("utf-8")
            for attempt in range(self.retries + 1):
                if self._post(body, event):
                    self.delivered += 1
                    break
                self.failures += 1
                if attempt == self.retries or self._stop.wait(BACKOFF_FIRST_S * 2**attempt):
                    self.given_up += 1
                    log.warning("webhook %s: gave up on event %s", self.url.split("?", 1)[0], event.get("id"))
                    break

    def _post(self, body: bytes, event: dict[str, Any]) -> bool:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "faces-live-events",
            "X-Face-Event": str(event.get("type")),
            "X-Face-Delivery": str(event.get("id")),
        }
        if self.secret:
            headers["X-Face-Signature"] = signature(self.secret, body)
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return 200 <= response.status < 300
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.info("webhook %s: %s", self.url.split("?", 1)[0], exc)
            return False


class Webhooks:
    def __init__(self, urls: list[str], secret: str | None, timeout_s: float = 5.0, retries: int = 5) -> None:
        if urls and not secret:
            log.warning("FACE_WEBHOOKS without FACE_WEBHOOK_SECRET: the events are posted unsigned")
        self.hooks = [Webhook(url, secret, timeout_s, retries) for url in urls]

    def submit(self, event: dict[str, Any]) -> None:
        for hook in self.hooks:
            hook.submit(event)

    def describe(self) -> list[dict[str, Any]]:
        return [hook.describe() for hook in self.hooks]

    def close(self) -> None:
        for hook in self.hooks:
            hook.close()
