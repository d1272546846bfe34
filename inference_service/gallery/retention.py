"""Erasing identities whose retention period has ended.

A background thread looks every ``every_s`` seconds for identities whose ``expires_at`` has
passed and erases each through ``Gallery.delete_identity``, the path ``DELETE
/identities/{name}`` takes (SQLite: secure delete and a truncated WAL; PostgreSQL: one logged
transaction that every replica applies). The erase runs under a ``WriteContext`` whose
``expired_before`` makes the store check the expiry again inside its write transaction: when
several replicas sweep one PostgreSQL gallery, exactly one of them erases a person and records
the ``expire`` audit row; the others find nothing to do.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from .audit import Actor, WriteContext, acting, now_utc
from .errors import GalleryError
from .gallery import Gallery

log = logging.getLogger(__name__)

SWEEPER_LABEL = "retention"  # the key label audit rows of expiry erases carry


class RetentionSweeper:
    """Erases expired identities of one gallery, now and then."""

    def __init__(self, gallery: Gallery, every_s: float, forget_names: bool = False) -> None:
        self.gallery = gallery
        self.every_s = every_s
        self.forget_names = forget_names
        self._next_expiry: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RetentionSweeper:
        self._thread = threading.Thread(target=self._run, name="gallery-retention", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def next_expiry(self) -> str | None:
        """The earliest expiry in the store; the last one read while the store is unreachable."""
        try:
            self._next_expiry = self.gallery.store.next_expiry()
        except GalleryError:
            pass
        return self._next_expiry

    def sweep(self, now: datetime | None = None) -> list[str]:
        """Erase every identity expired at ``now``; the names this process erased."""
        now = now or now_utc()
        erased = []
        context = WriteContext(actor=Actor(SWEEPER_LABEL), expired_before=now, forget_names=self.forget_names)
        for name in self.gallery.store.expired_identities(now):
            with acting(context):
                if self.gallery.delete_identity(name):
                    erased.append(name)
                    log.info("retention: erased %r (its expiry passed)", name)
        return erased

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.sweep()
            except GalleryError as exc:  # unreachable or full: the next sweep tries again
                log.warning("retention sweep failed (%s); retrying in %g s", exc, self.every_s)
            except Exception:  # never let the thread die silently
                log.exception("retention sweep failed; retrying in %g s", self.every_s)
