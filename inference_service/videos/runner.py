"""The video workers: take jobs from the store, run the analysis core's annotation, record the outcome.

Video work must not starve photo requests. It runs on its own ``FACE_VIDEO_WORKERS`` threads,
each analysing ``FACE_THREADS`` frames at once with one torch thread per frame (the core's
fastest setting on a CPU), and those threads run at a lower CPU priority (``FACE_VIDEO_NICE``;
Linux gives every thread its own nice value and threads they start inherit it), so when a
``/recognize`` request arrives the kernel hands it the cores first and the video job takes what
is left. Both share the API's engine and gallery: a track is named against the gallery as it is
when the job runs.

Stopping: the progress hook checks a per-job cancel flag and the shutdown flag on every frame.
A DELETE stops the job and its files go; a shutdown puts the running job back in the queue with
its upload, so it runs again after the restart. A kill (no shutdown) leaves the row ``running``;
the next start requeues it (see ``SQLiteJobStore.recover_interrupted``).

On a PostgreSQL gallery the jobs are rows of that database (``pg_store.PostgresJobStore``) and
every replica's workers take from one queue; FACE_VIDEO_DIR must then be one folder shared by
all of them (a shared volume), since the replica that takes a job reads the upload another
received. A running job's lease is renewed by its progress and by a heartbeat thread; a job of
a replica that died is taken over once its lease (FACE_VIDEO_LEASE_S) expired.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path

from ..analysis.annotate import Hooks, annotate_video
from ..analysis.errors import AnalysisError
from ..analysis.matcher import EngineMatcher
from ..analysis.source import probe
from ..config import Settings
from ..gallery.names import identity_key
from .files import JobFiles, valid_job_id
from .job_stores import jobs_folder
from .job_stores import open_job_store as open_gallery_job_store
from .jobs import Job, JobStore, TrackEnrollment
from .tracks import erase_track

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # a video that kills the process twice is not tried a third time
BEST_FACES_PER_TRACK = 5  # kept per track for "name this person"
PROGRESS_EVERY_S = 0.5  # database writes of progress, at most
ANALYSIS_SHARE = 0.85  # of the progress fraction; rendering takes the rest
ORPHAN_AGE_S = 3600.0  # a job folder without a row (an upload cut off by a crash) is removed after
# An upload's reservation outlives its request by at most the body timeout plus the probe; one
# older than this belongs to a process killed mid-upload and is given back by the sweeper.
STALE_UPLOAD_MARGIN_S = 300.0
# A video whose decoder stops this short of the frames its header declares ends with a warning:
# container counts of MP4/MOV are exact, estimated ones (duration x rate) may be off a little.
SHORT_READ_TOLERANCE = 0.05
SHORT_READ_MIN_FRAMES = 2
# The sweeper erases the tracks of a person no longer in the gallery (erased by retention, or
# by a request whose process died before it reached the videos); a younger record may be an
# enrollment another replica's gallery copy has not caught up with yet.
ERASURE_CHECK_AFTER_S = 600.0


class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def jobs_root(settings: Settings) -> Path:
    """FACE_VIDEO_DIR, else ``videos/`` beside a SQLite gallery file (see ``job_stores``)."""
    return jobs_folder(settings.gallery, settings.video_dir)


def open_job_store(settings: Settings, root: Path) -> JobStore:
    """The gallery's PostgreSQL database when it is one (shared by replicas), else a SQLite file."""
    return open_gallery_job_store(
        settings.gallery,
        root,
        lease_s=settings.video_lease_s,
        max_attempts=MAX_ATTEMPTS,
        pool_size=settings.video_workers + 3,
    )


class VideoJobs:
    """Job store + worker threads + retention sweeper of one API process."""

    def __init__(self, settings: Settings, engine, gallery) -> None:
        self.settings = settings
        self.engine = engine
        self.gallery = gallery
        self.root = jobs_root(settings)
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = open_job_store(settings, self.root)
        self._stopping = threading.Event()
        self._wake = threading.Condition()
        self._lock = threading.Lock()
        self._cancel: dict[str, threading.Event] = {}  # running job -> its cancel flag
        self._released: dict[str, threading.Event] = {}  # running job -> set when its worker let go
        self._threads: list[threading.Thread] = []

    def files(self, job_id: str) -> JobFiles:
        return JobFiles(self.root, job_id)

    # -- life -----------------------------------------------------------------------------------
    def start(self) -> None:
        requeued, failed = self.store.recover_interrupted(MAX_ATTEMPTS)
        for job_id in failed:
            self.files(job_id).remove_upload()
        if requeued or failed:
            log.warning(
                "video jobs interrupted by the last stop: %d queued again, %d failed", len(requeued), len(failed)
            )
        self.sweep()
        for n in range(self.settings.video_workers):
            thread = threading.Thread(target=self._work, name=f"video-worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        for target, name in ((self._sweep_loop, "video-sweeper"), (self._heartbeat_loop, "video-heartbeat")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the workers; a running job goes back to the queue and runs after the next start."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.store.close()

    def wake(self) -> None:
        with self._wake:
            self._wake.notify()

    # -- requests -------------------------------------------------------------------------------
    def cancel_and_delete(self, job_id: str, wait_s: float = 60.0) -> bool:
        """Stop the job if it runs, then remove its files and its row; False when unknown.

        The row goes first, in one statement, so of several DELETEs of one job (here or on other
        replicas) exactly one wins; the job's worker, wherever it runs, finds its next progress
        write refused and stops, and removes whatever it wrote meanwhile.
        """
        if not self.store.delete(job_id):
            return False
        with self._lock:
            flag, released = self._cancel.get(job_id), self._released.get(job_id)
        if flag is not None and released is not None:
            flag.set()
            if not released.wait(wait_s):
                log.error("video job %s did not stop within %g s; deleting its files anyway", job_id, wait_s)
        self.files(job_id).remove_all()
        return True

    def erase_identity(self, name: str) -> list[TrackEnrollment]:
        """Remove the kept faces of every track enrolled under ``name`` (the person was erased);
        the tracks, whose records now keep no name and refuse a second enrollment."""
        erased = self.store.erase_enrollments(identity_key(name))
        for record in erased:
            faces = erase_track(self.files(record.job_id), record.track_id)
            log.info("erased %d kept face(s) of track %d of video job %s", faces, record.track_id, record.job_id)
        return erased

    def follow_identity(self, old_name: str, new_name: str) -> None:
        """A person renamed or merged into another: the tracks enrolled under the old name are
        the new one's now (their erasure, their export); without this the sweeper would take the
        old name's absence for an erasure."""
        self.store.reassign_enrollments(identity_key(old_name), new_name, identity_key(new_name))

    def _erase_the_forgotten(self) -> int:
        """Tracks enrolled under a name the gallery no longer holds: erased now."""
        erased = 0
        for name in self.store.enrolled_identities(time.time() - ERASURE_CHECK_AFTER_S):
            if self.gallery is not None and self.gallery.faces_of(name) is None:
                erased += len(self.erase_identity(name))
        return erased

    # -- workers --------------------------------------------------------------------------------
    def _work(self) -> None:
        _lower_priority(self.settings.video_nice)
        while not self._stopping.is_set():
            try:
                for failed in self.store.fail_expired():  # out of attempts: its upload goes now
                    self.files(failed).remove_upload()
                    log.warning("video job %s failed: its last attempt's lease expired", failed)
                job = self.store.claim_next()
            except Exception:  # a locked or broken jobs file: log, wait, try again
                log.exception("could not claim a video job")
                job = None
            if job is None:
                with self._wake:
                    self._wake.wait(timeout=2.0)
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        files = self.files(job.id)
        cancel = threading.Event()
        released = threading.Event()
        with self._lock:
            self._cancel[job.id] = cancel
            self._released[job.id] = released
        started = time.perf_counter()
        try:
            outcome, error, warning = self._analyse(job, files, cancel)
        finally:
            with self._lock:
                self._cancel.pop(job.id, None)
                self._released.pop(job.id, None)
            released.set()
        seconds = time.perf_counter() - started
        if outcome == "requeue":
            self.store.requeue(job.id)
            log.info("video job %s stopped by shutdown after %.1f s; queued again", job.id, seconds)
            return
        current = self.store.get(job.id)
        if outcome == "cancelled" and current is not None and current.status == "running":
            # not cancelled: its lease expired and another replica runs it now; its files are theirs
            log.warning("video job %s was taken over by another replica after %.1f s; stopped here", job.id, seconds)
            return
        if outcome == "cancelled" or current is None or current.status == "cancelled":
            # DELETE removes the files too, but it may have run before this worker stopped writing
            files.remove_all()
            log.info("video job %s cancelled after %.1f s", job.id, seconds)
            return
        files.remove_upload()
        self.store.finish(job.id, outcome, error, warning)
        note = error or warning
        log.info("video job %s %s in %.1f s%s", job.id, outcome, seconds, f": {note}" if note else "")

    def _analyse(self, job: Job, files: JobFiles, cancel: threading.Event) -> tuple[str, str | None, str | None]:
        """(outcome, error, warning) of one run of the job."""
        if not files.upload.is_file():
            return (
                "failed",
                "the uploaded video is no longer on disk (removed while queued; with several replicas, "
                "FACE_VIDEO_DIR must be one folder they all share)",
                None,
            )
        shutil.rmtree(files.results, ignore_errors=True)  # a rerun after a restart starts clean
        frame_limit = self._frame_limit(job)
        last_write = 0.0
        frames_read = 0

        def progress(stage: str, done: int, total: int) -> None:
            nonlocal last_write, frames_read
            if stage == "analysing":
                frames_read = max(frames_read, done)
            if cancel.is_set():
                raise _Stop("cancelled")
            if self._stopping.is_set():
                raise _Stop("shutdown")
            if frame_limit and done > frame_limit:
                raise AnalysisError(
                    f"the video has more frames than its header says; it runs past the "
                    f"{self.settings.max_video_seconds:g} s limit (FACE_MAX_VIDEO_SECONDS)"
                )
            now = time.monotonic()
            if now - last_write >= PROGRESS_EVERY_S or done == total:
                last_write = now
                share = min(1.0, done / max(total, 1))
                fraction = (
                    ANALYSIS_SHARE * share if stage == "analysing" else ANALYSIS_SHARE + (1 - ANALYSIS_SHARE) * share
                )
                if not self.store.progress(job.id, stage, done, fraction):
                    raise _Stop("cancelled")

        matcher = EngineMatcher(self.engine, self.gallery, workers=self.settings.threads, source="api")
        try:
            info = probe(files.upload)
            annotate_video(
                files.upload,
                info,
                matcher,
                files.results,
                label=job.filename,
                hooks=Hooks(progress=progress, codec="h264", best_faces=BEST_FACES_PER_TRACK, show_progress=False),
            )
        except _Stop as stop:
            return ("cancelled" if stop.reason == "cancelled" else "requeue"), None, None
        except AnalysisError as exc:
            return "failed", str(exc), None
        except Exception as exc:  # a bug or a decoder crash: the job fails, the service goes on
            log.exception("video job %s failed", job.id)
            return "failed", f"the analysis failed unexpectedly ({type(exc).__name__}); see the service log", None
        return "done", None, short_read_warning(frames_read, job.frames_total)

    def _frame_limit(self, job: Job) -> int:
        """Frames allowed: the duration limit at the probed rate, with 10% slack for odd headers."""
        rate = job.frames_total / job.duration_s if job.duration_s > 0 else 0
        return int(self.settings.max_video_seconds * rate * 1.1) + 1 if rate > 0 else 0

    # -- retention --------------------------------------------------------------------------------
    def sweep(self) -> int:
        """Remove jobs finished more than FACE_VIDEO_RETENTION_HOURS ago, and orphaned folders."""
        cutoff = time.time() - self.settings.video_retention_hours * 3600
        removed = 0
        for job_id in self.store.finished_before(cutoff):
            self.files(job_id).remove_all()
            self.store.delete(job_id)
            removed += 1
        for job_id in self.store.stale_uploads(time.time() - self.settings.body_timeout_s - STALE_UPLOAD_MARGIN_S):
            self.files(job_id).remove_all()
            removed += 1
        if erased := self._erase_the_forgotten():
            log.info("erasure: removed the kept faces of %d track(s) of people no longer enrolled", erased)
        for folder in self.root.iterdir():
            if not (folder.is_dir() and valid_job_id(folder.name)):
                continue
            try:  # an upload still arriving keeps touching its partial file
                age = time.time() - max([folder.stat().st_mtime] + [f.stat().st_mtime for f in folder.iterdir()])
            except FileNotFoundError:
                continue
            if age > ORPHAN_AGE_S and self.store.get(folder.name) is None:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        if removed:
            log.info("video retention: removed %d job(s)", removed)
        return removed

    def _heartbeat_loop(self) -> None:
        """Renew the lease of the jobs running here, also through stages that report no progress."""
        while not self._stopping.wait(self.settings.video_lease_s / 4):
            with self._lock:
                running = list(self._cancel)
            for job_id in running:
                try:
                    self.store.heartbeat(job_id)
                except Exception:  # the database is away: the lease may lapse; the job then moves on
                    log.exception("could not renew the lease of video job %s", job_id)

    def _sweep_loop(self) -> None:
        interval = min(300.0, self.settings.video_retention_hours * 3600 / 10)
        while not self._stopping.wait(interval):
            try:
                self.sweep()
            except Exception:
                log.exception("video retention sweep failed")


def short_read_warning(frames_read: int, frames_declared: int) -> str | None:
    """A warning when the decoder stopped well short of the frames the header declares (a
    truncated or damaged file): the results cover only what could be read, and the reader
    of the job must know it."""
    tolerance = max(SHORT_READ_MIN_FRAMES, int(frames_declared * SHORT_READ_TOLERANCE))
    if frames_read >= frames_declared - tolerance:
        return None
    return (
        f"the video ends early: {frames_read} of the {frames_declared} frames its header declares could be "
        "read (a truncated or damaged file); the results cover only those"
    )


def _lower_priority(nice: int) -> None:
    """Lower this thread's CPU priority (Linux: per thread; threads it starts inherit it)."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError as exc:
        log.warning("could not lower the video worker's priority: %s", exc)
