"""Short-lived tickets that open the ``/live`` WebSocket where a read key is required.

A browser cannot set an ``X-API-Key`` header on a WebSocket, and the site must not hand its key
to the page. So the site asks ``POST /live/tickets`` (with its key) for a ticket and the page
offers it as a subprotocol (``ticket.<ticket>``). A ticket is its expiry time, a nonce and an
HMAC-SHA256 of both under the read key: any replica holding the same key can check it without a
shared store, and it is worthless after :attr:`Settings.live_ticket_s` seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

PREFIX = "ticket."


def _sign(key: str, body: str) -> str:
    return hmac.new(key.encode("utf-8"), f"live-ticket:{body}".encode(), hashlib.sha256).hexdigest()


def issue(key: str, lifetime_s: float, now: float | None = None) -> str:
    """A ticket valid for ``lifetime_s`` seconds; only characters a subprotocol token allows."""
    expires = int((time.time() if now is None else now) + lifetime_s)
    body = f"{expires}.{secrets.token_hex(8)}"
    return f"{body}.{_sign(key, body)}"


def valid(key: str, ticket: str, now: float | None = None) -> bool:
    """True for a ticket signed with ``key`` that has not expired (constant-time comparison)."""
    expires, _, rest = ticket.partition(".")
    nonce, _, signature = rest.partition(".")
    if not expires.isdigit() or not nonce or not signature:
        return False
    if not hmac.compare_digest(signature.encode(), _sign(key, f"{expires}.{nonce}").encode()):
        return False
    return int(expires) >= (time.time() if now is None else now)


def from_protocols(offered: list[str]) -> str | None:
    """The ticket among the subprotocols a client offered, if any."""
    for protocol in offered:
        if protocol.startswith(PREFIX):
            return protocol[len(PREFIX) :]
    return None
