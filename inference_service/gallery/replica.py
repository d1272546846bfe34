"""Keeping this process's in-memory gallery in step with a PostgreSQL gallery other replicas write.

Every write appends to ``gallery_changes`` in its own transaction and NOTIFYs its ``seq`` (see
``pg_changes.py``). This process applies the entries after the last one it applied, in ``seq``
order, through the gallery's ``apply_*`` methods (memory only), when:
- a notification arrives on a dedicated autocommit connection LISTENing in a background thread;
- every ``poll_s`` seconds anyway, so a lost notification or a dropped connection leaves memory
  stale for at most that long; after a reconnect it catches up from the log at once;
- this process writes: inside the write's transaction (which holds the gallery write lock) it
  reads what others committed before it, applies that after the commit, then the gallery
  applies its own change; the answer to the client therefore already reflects the write
  (read-your-writes) and entries are never applied out of order.
A replica whose position was trimmed out of the log reloads the whole gallery and applies the
difference. While PostgreSQL is unreachable nothing here stops searches: memory keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .errors import GalleryError
from .gallery import Gallery
from .store import FaceRecord, FaceTable

if TYPE_CHECKING:  # psycopg loads only for a PostgreSQL gallery: the API imports this module always
    from .pg_changes import Change, ChangeBatch
    from .pg_store import PostgresStore

log = logging.getLogger(__name__)

RECONNECT_S = 0.5
WAKE_S = 0.5  # longest wait on notifications before checking stop/poll deadlines


class ReplicaSync:
    """Applies other replicas' writes to ``gallery``; one per API process."""

    def __init__(self, store: PostgresStore, gallery: Gallery, poll_s: float = 2.0) -> None:
        self.store = store
        self.gallery = gallery
        self.poll_s = poll_s
        self.applied = store.loaded_seq  # the gallery was loaded at this log position
        self.latest = self.applied  # highest seq seen committed (notifications, polls)
        self.synced_at = time.monotonic()  # last time memory was known to be up to date
        self.connected = False
        self._reload = False
        self._stop = threading.Event()
        self._catch_up_lock = threading.Lock()  # one catch-up (read + apply) at a time
        self._thread: threading.Thread | None = None

    # -- life ---------------------------------------------------------------------------------
    def start(self) -> ReplicaSync:
        self.store.observer = self
        self._thread = threading.Thread(target=self._listen, name="gallery-replica-sync", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self.store.observer is self:
            self.store.observer = None
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def status(self) -> dict:
        """For /health: the applied position and how far behind the last one seen it is."""
        return {
            "applied_seq": self.applied,
            "behind": max(0, self.latest - self.applied),
            "synced_s_ago": round(time.monotonic() - self.synced_at, 1),
            "connected": self.connected,
        }

    # -- this process's writes (pg_changes.WriteObserver) ------------------------------------------
    @property
    def lock(self):
        """Held by the store across a write: no listener apply between its catch-up and commit."""
        return self.gallery.write_lock

    def before_write(self, read: Callable[[int], ChangeBatch]) -> ChangeBatch:
        return read(self.applied)

    def after_commit(self, earlier: ChangeBatch, seq: int | None) -> None:
        with self.gallery.write_lock:
            if earlier.trimmed:
                self._reload = True  # the listener reloads; memory gets this write from the gallery
                return
            self._apply(earlier.changes)
            if seq is not None:
                self.applied = max(self.applied, seq)
                self.latest = max(self.latest, seq)

    # -- catching up ----------------------------------------------------------------------------
    def catch_up(self) -> None:
        """Apply every change committed after ``applied``; raises GalleryError when unreachable."""
        with self._catch_up_lock:
            if self._reload:
                self.reload()
                return
            batch = self.store.read_changes(self.applied)
            self.latest = max(self.latest, batch.latest)
            if batch.trimmed:
                log.warning("the change log no longer reaches seq %d: reloading the whole gallery", self.applied)
                self.reload()
                return
            with self.gallery.write_lock:
                self._apply(batch.changes)
            self.synced_at = time.monotonic()

    def _apply(self, changes: list[Change]) -> None:
        """Apply in order what is after ``applied`` (caller holds the gallery write lock)."""
        later = _next_holders(changes)
        for k, change in enumerate(changes):
            if change.seq <= self.applied:
                continue
            if change.op == "add":
                if change.records:
                    self.gallery.apply_added(change.records)
            elif change.op == "delete_identity":
                self.gallery.apply_removed_identity(change.name)
            elif change.op == "delete_face":
                self.gallery.apply_removed_faces(change.name, change.face_ids)
            elif change.op == "move":  # a rename, merge or move: the faces join their identity then, at once
                self._apply_move(change, later[k])
            self.applied = change.seq

    def _apply_move(self, change: Change, later: dict[str, str]) -> None:
        """The faces go where this change put them: the identity a later entry of the same batch
        took them from (``later``), else the one they belong to now. Their identity now, when a
        later entry moved them on, would publish a state the database never held (a merge's faces
        already under the name a later rename gave, beside the merged-into identity still unrenamed)."""
        now = {r.face_id: r.identity for r in change.records}
        by_target: dict[str, list[str]] = {}
        for face_id in change.face_ids:
            target = later.get(face_id, now.get(face_id))
            if target is not None:
                by_target.setdefault(target, []).append(face_id)
        for target, face_ids in by_target.items():
            self.gallery.apply_moved(change.name, target, face_ids)
        gone = [f for f in change.face_ids if f not in now and f not in later]
        if gone:  # deleted since, by an entry not read yet: not in the database any more
            self.gallery.apply_removed_faces(change.name, gone)
        missing = [r for r in change.records if r.face_id not in later]
        if missing:
            self.gallery.apply_added(missing)  # any this memory lacked

    def reload(self) -> None:
        """Make memory equal to the store: apply the difference (rare: a replica far behind)."""
        with self.gallery.write_lock:
            table = self.store.load_table(self.gallery.dim)
            stored = _records_by_id(table, self.store.embedder() or "")
            in_memory: dict[str, str] = {}
            for name, _ in self.gallery.identities():
                for record in self.gallery.faces_of(name) or []:
                    in_memory[record.face_id] = record.identity
            gone: dict[str, list[str]] = {}
            for face_id, identity in in_memory.items():
                if face_id not in stored:
                    gone.setdefault(identity, []).append(face_id)
            for identity, face_ids in gone.items():
                self.gallery.apply_removed_faces(identity, face_ids)
            added = [rec for face_id, rec in stored.items() if face_id not in in_memory]
            if added:
                self.gallery.apply_added(added)
            self.applied = self.store.loaded_seq
            self.latest = max(self.latest, self.applied)
            self._reload = False
            self.synced_at = time.monotonic()
            log.info(
                "gallery reloaded at seq %d: %d faces added, %d removed",
                self.applied,
                len(added),
                sum(len(v) for v in gone.values()),
            )

    # -- the listener thread ----------------------------------------------------------------------
    def _listen(self) -> None:
        import psycopg

        from .pg_changes import CHANNEL
        from .pg_connect import listen_connection

        while not self._stop.is_set():
            try:
                with listen_connection(self.store.conninfo) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if not self.connected:
                        log.info("listening for gallery changes on %s", self.store.where)
                    self.connected = True
                    self.catch_up()  # what was committed while not listening
                    next_poll = time.monotonic() + self.poll_s
                    while not self._stop.is_set():
                        wait = max(0.01, min(WAKE_S, next_poll - time.monotonic()))
                        newer = False
                        for note in conn.notifies(timeout=wait, stop_after=1):
                            seq = int(note.payload) if note.payload.isdigit() else 0
                            self.latest = max(self.latest, seq)
                            newer = seq > self.applied
                        if newer or self._reload or time.monotonic() >= next_poll:
                            self.catch_up()
                            next_poll = time.monotonic() + self.poll_s
            except (psycopg.Error, GalleryError) as exc:
                if self.connected:
                    log.warning(
                        "gallery sync lost PostgreSQL (%s); serving from memory, retrying",
                        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                    )
                self.connected = False
                self._stop.wait(RECONNECT_S)
            except Exception:  # never let the thread die silently: log and retry
                log.exception("gallery sync failed; retrying")
                self.connected = False
                self._stop.wait(RECONNECT_S)


def _next_holders(changes: list[Change]) -> list[dict[str, str]]:
    """For each entry, face id -> the identity the next later entry naming that face took it
    from (a move, rename, merge or delete): where the face was right after this entry."""
    out: list[dict[str, str]] = [{} for _ in changes]
    following: dict[str, str] = {}
    for k in range(len(changes) - 1, -1, -1):
        if changes[k].op == "move":
            out[k] = {f: following[f] for f in changes[k].face_ids if f in following}
        if changes[k].op in ("move", "delete_identity", "delete_face"):
            for face_id in changes[k].face_ids:
                following[face_id] = changes[k].name
    return out


def _records_by_id(table: FaceTable, embedder: str) -> dict[str, FaceRecord]:
    created = np.datetime_as_string(table.created_at, unit="us")
    out = {}
    for i in range(len(table.face_ids)):
        box = table.boxes[i]
        face_id = table.face_ids[i].decode()
        out[face_id] = FaceRecord(
            face_id=face_id,
            identity=table.names[int(table.identity[i])],
            embedding=table.embeddings[i],
            embedder=embedder,
            created_at=f"{created[i]}+00:00",
            box=None if np.isnan(box).any() else (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
        )
    return out


def replica_status(gallery: Gallery) -> dict | None:
    """The sync status of a gallery on PostgreSQL, None for one that is not replicated."""
    observer = getattr(gallery.store, "observer", None)
    return observer.status() if isinstance(observer, ReplicaSync) else None


def start_sync(gallery: Gallery, poll_s: float) -> ReplicaSync | None:
    """Keep ``gallery`` in step with its store when that is PostgreSQL; None otherwise."""
    if not gallery.store.replicated:
        return None
    return ReplicaSync(gallery.store, gallery, poll_s).start()  # type: ignore[arg-type]
