"""A bounded pool for the CPU work of requests (decode, detect, embed, search).

The event loop must never run model code: one slow image would stall every other client. So
each request hands its work to a fixed number of worker threads. A plain executor would queue
without bound under overload (memory grows, every client waits longer and longer), so the pool
also counts the jobs that are running or waiting and refuses new ones beyond
``workers + queue_size``: the API answers those with 503 and a ``Retry-After`` estimate.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class PoolFullError(RuntimeError):
    """Every worker is busy and every waiting slot is taken."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("the service is busy: all inference workers and waiting slots are taken")
        self.retry_after = retry_after


class InferencePool:
    """``workers`` threads plus ``queue_size`` waiting slots; beyond that, :class:`PoolFullError`."""

    def __init__(self, workers: int, queue_size: int) -> None:
        if workers < 1 or queue_size < 0:
            raise ValueError("workers must be >= 1 and queue_size >= 0")
        self.workers = workers
        self.queue_size = queue_size
        self.capacity = workers + queue_size
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="face-inference")
        self._lock = threading.Lock()
        self._pending = 0
        # Smoothed job duration, for an honest Retry-After; 0.5 s until the first job ends.
        self._mean_seconds = 0.5

    @property
    def pending(self) -> int:
        """Jobs running or waiting right now."""
        return self._pending

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead drained by all workers, >= 1."""
        return max(1, math.ceil(self.capacity / self.workers * self._mean_seconds))

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Start ``fn(*args)`` on a worker (or queue it); raises :class:`PoolFullError` when full.

        The slot is held until the job has finished (or was cancelled before it started), not
        until the caller stops waiting, so a client that disconnects cannot over-fill the pool.
        """
        with self._lock:
            if self._pending >= self.capacity:
                raise PoolFullError(self.retry_after())
            self._pending += 1
        started = time.perf_counter()

        def timed() -> T:
            nonlocal started
            started = time.perf_counter()
            return fn(*args)

        def release(future: Future[T]) -> None:
            with self._lock:
                self._pending -= 1
                if not future.cancelled():
                    self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * (time.perf_counter() - started)

        try:
            future = self._executor.submit(timed)
        except BaseException:
            with self._lock:
                self._pending -= 1
            raise
        future.add_done_callback(release)
        return future

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Await ``fn(*args)`` run on a worker thread, off the event loop."""
        return await asyncio.wrap_future(self.submit(fn, *args))

    def shutdown(self) -> None:
        """Finish running jobs, drop waiting ones."""
        self._executor.shutdown(wait=True, cancel_futures=True)
