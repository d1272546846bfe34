"""Requests that arrive within a few milliseconds share one batched forward pass.

On a GPU one photo at a time leaves most of the device idle: a forward pass of MTCNN or the
embedder costs about the same for one image as for sixteen. So, when it is on, every caller of
the engine (the API's worker threads, video and live jobs) hands its images to one dispatcher
thread instead of running the models itself. The dispatcher waits at most ``window_s`` after the
first job of a batch arrived (a lone request is delayed by that and no more), then runs one
detection pass over all the batch's images and one embedding pass over all their faces (and any
chips sent to be embedded), and gives each job its own part of the result.

Photo requests go first: a batch is filled with ``Priority.PHOTO`` jobs before any
``Priority.BACKGROUND`` (video, live) job, so a long video never delays a photo by more than the
pass that is already running. A job is never split across batches; a batch holds at most
``max_images`` images unless its first job alone has more.

If a shared pass fails (one request's image the models cannot take, say), each of its jobs is run
again on its own, so the error reaches the job that caused it and only that one.

On a CPU this is off by default: there the API's workers each run their own requests in parallel
on a share of the cores, which serves more requests than one shared pass would (see
``FaceEngine.from_settings``). ``FACE_BATCH=on`` forces it on, which is how it is tested without a GPU.
"""

from __future__ import annotations

import enum
import itertools
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .detection import Face, MTCNNDetector
from .embedders import Embedder

log = logging.getLogger(__name__)

Kind = Literal["detect", "analyze", "embed"]


class Priority(enum.IntEnum):
    """Lower runs first."""

    PHOTO = 0
    BACKGROUND = 1


@dataclass
class _Job:
    kind: Kind
    items: Sequence[np.ndarray] | np.ndarray  # images (detect, analyze) or an N x S x S x 3 array of chips (embed)
    priority: Priority
    arrived: float
    order: int
    future: Future[Any] = field(default_factory=Future)


@dataclass
class BatcherStats:
    """What the batcher has done, for tests and benchmarks."""

    passes: int = 0
    jobs: int = 0
    largest_batch: int = 0  # jobs in the largest pass
    retried_alone: int = 0  # jobs run again on their own after a shared pass failed


class Batcher:
    """One dispatcher thread that runs the engine's models for every caller, in shared passes."""

    def __init__(
        self, detector: MTCNNDetector, embedder: Embedder, window_s: float = 0.004, max_images: int = 16
    ) -> None:
        if window_s < 0 or max_images < 1:
            raise ValueError("window_s must be >= 0 and max_images >= 1")
        self.detector = detector
        self.embedder = embedder
        self.window_s = window_s
        self.max_images = max_images
        self.stats = BatcherStats()
        self._queue: list[_Job] = []
        self._cond = threading.Condition()
        self._order = itertools.count()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="face-batcher", daemon=True)
        self._thread.start()

    # --- what callers use ---------------------------------------------------------------------
    def detect(self, images: Sequence[np.ndarray], priority: Priority = Priority.PHOTO) -> list[list[Face]]:
        """Faces of each image, as ``MTCNNDetector.detect_batch`` gives them."""
        return self._submit("detect", images, priority)

    def analyze(
        self, images: Sequence[np.ndarray], priority: Priority = Priority.PHOTO
    ) -> list[list[tuple[Face, np.ndarray]]]:
        """Each image's faces with their embeddings."""
        return self._submit("analyze", images, priority)

    def embed(self, chips: np.ndarray, priority: Priority = Priority.PHOTO) -> np.ndarray:
        """Embeddings of face chips cut by ``embedder.crops``."""
        return self._submit("embed", chips, priority)

    def close(self) -> None:
        """Stop the dispatcher once the jobs already queued are done."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    # --- the dispatcher -----------------------------------------------------------------------
    def _submit(self, kind: Kind, items: Sequence[np.ndarray] | np.ndarray, priority: Priority) -> Any:
        job = _Job(kind, items, priority, time.perf_counter(), 0)
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            job.order = next(self._order)
            self._queue.append(job)
            self._cond.notify_all()
        return job.future.result()

    def _queued_images(self) -> int:
        return sum(len(job.items) for job in self._queue)

    def _next_batch(self) -> list[_Job]:
        """Wait for a job, then for the window after the oldest job's arrival (or a full batch)."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return []
            deadline = min(job.arrived for job in self._queue) + self.window_s
            while self._queued_images() < self.max_images and not self._closed:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._cond.wait(left)
            self._queue.sort(key=lambda job: (job.priority, job.order))
            batch: list[_Job] = []
            images = 0
            for job in self._queue:
                if batch and images + len(job.items) > self.max_images:
                    break
                batch.append(job)
                images += len(job.items)
            del self._queue[: len(batch)]
            return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                return
            self.stats.passes += 1
            self.stats.jobs += len(batch)
            self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
            try:
                results = self._shared_pass(batch)
            except Exception as exc:
                if len(batch) == 1:
                    batch[0].future.set_exception(exc)
                    continue
                log.info("a shared pass of %d jobs failed (%s); running each on its own", len(batch), exc)
                for job in batch:
                    self.stats.retried_alone += 1
                    try:
                        job.future.set_result(self._shared_pass([job])[0])
                    except Exception as alone:
                        job.future.set_exception(alone)
                continue
            for job, result in zip(batch, results):
                job.future.set_result(result)

    def _shared_pass(self, batch: Sequence[_Job]) -> list[Any]:
        """One detection pass over every image of the batch, one embedding pass over every face."""
        images = [image for job in batch if job.kind != "embed" for image in job.items]
        detections = self.detector.detect_batch(images) if images else []
        chips: list[np.ndarray] = []
        cursor = 0
        for job in batch:
            if job.kind == "embed":
                chips.append(np.asarray(job.items, dtype=np.uint8))
                continue
            for image, faces in zip(job.items, detections[cursor : cursor + len(job.items)]):
                if job.kind == "analyze" and faces:
                    chips.append(self.embedder.crops(image, faces))
            cursor += len(job.items)
        vectors = self.embedder.embed(np.concatenate(chips)) if chips else np.zeros((0, self.embedder.dim))
        results: list[Any] = []
        cursor, row = 0, 0
        for job in batch:
            if job.kind == "embed":
                results.append(vectors[row : row + len(job.items)])
                row += len(job.items)
                continue
            faces_of = detections[cursor : cursor + len(job.items)]
            cursor += len(job.items)
            if job.kind == "detect":
                results.append(faces_of)
                continue
            analyzed = []
            for faces in faces_of:
                analyzed.append([(face, vectors[row + i]) for i, face in enumerate(faces)])
                row += len(faces)
            results.append(analyzed)
        return results
