"""Random ids the site handed out and still honours, kept in the site's memory: logins and naming forms.

A signed cookie or form token alone cannot be taken back: whoever saved a copy can replay it until
it expires. Both the login (:mod:`web_frontend.auth`) and "Name this face" (:mod:`web_frontend.naming`)
therefore also carry a random id that must still be listed here: logging out removes the session's
id, naming a face uses its form's id up. The list is bounded and forgets ids after ``ttl_s``, so
neither a flood of logins nor of result pages can grow it without limit; an id pushed out early only
means logging in again or recognising the photo again. It lives in the process: a restart of the
site ends every login and invalidates every open naming form (closed, never open, by default).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from enum import Enum

from cachetools import TTLCache


class IdState(Enum):
    UNKNOWN = "unknown"  # never issued here, expired, pushed out, or issued before a restart
    OPEN = "open"
    USED = "used"


class IssuedIds:
    """Thread-safe: waitress serves requests from several threads at once."""

    def __init__(self, max_ids: int, ttl_s: float, timer: Callable[[], float] = time.monotonic) -> None:
        self._ids: TTLCache[str, IdState] = TTLCache(maxsize=max_ids, ttl=ttl_s, timer=timer)
        self._lock = threading.Lock()

    def issue(self) -> str:
        new = secrets.token_urlsafe(24)
        with self._lock:
            self._ids[new] = IdState.OPEN
        return new

    def is_open(self, issued: object, renew: bool = False) -> bool:
        """True while ``issued`` is open; ``renew`` restarts its time to live (a login's idle timeout)."""
        if not isinstance(issued, str):
            return False
        with self._lock:
            if self._ids.get(issued) is not IdState.OPEN:
                return False
            if renew:
                self._ids[issued] = IdState.OPEN
            return True

    def use(self, issued: object) -> IdState:
        """Use ``issued`` up if it is open, in one step: of two requests racing with one id, one wins.

        Returns the state it had: only :attr:`IdState.OPEN` means this caller may go on. A used id is
        remembered as used until it expires, so a replay can be told apart from a stale form.
        """
        if not isinstance(issued, str):
            return IdState.UNKNOWN
        with self._lock:
            state = self._ids.get(issued, IdState.UNKNOWN)
            if state is IdState.OPEN:
                self._ids[issued] = IdState.USED
            return state

    def reopen(self, issued: str) -> None:
        """Undo :meth:`use` after the action it allowed failed (the API refused): the form may be sent again."""
        with self._lock:
            if self._ids.get(issued) is IdState.USED:
                self._ids[issued] = IdState.OPEN

    def revoke(self, issued: object) -> None:
        if isinstance(issued, str):
            with self._lock:
                self._ids.pop(issued, None)
