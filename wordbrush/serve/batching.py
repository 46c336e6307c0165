"""Dynamic batching: one worker thread runs the model; the event loop only queues work and awaits it.

A job is one request: its prompts, one seed per image, its sampling options. The worker takes the oldest job, waits
until `max_wait_ms` after it arrived (or until jobs with the same sampling options hold `max_batch` images), and
draws all of them in one `pipe.draw` call. Each image keeps its own seed, so it does not depend on what it was
batched with (the pipeline's promise). Jobs with other options wait for a later batch, in arrival order.

At most `max_queue` jobs wait; `submit` refuses the next with QueueFull (the server answers 429 + Retry-After).
A job whose future is cancelled before the worker takes it (its client went away) is dropped, never drawn.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import astuple, dataclass, field
from typing import Any, Callable

log = logging.getLogger("wordbrush.serve")


class QueueFull(Exception):
    def __init__(self, waiting: int, retry_after: int):
        super().__init__(f"{waiting} requests are waiting for the model")
        self.waiting, self.retry_after = waiting, retry_after


class Stopped(Exception):
    """The batcher is stopping: no new work, and queued work is not drawn."""


@dataclass(eq=False)
class Job:
    prompts: list[str]  # one per image
    seeds: list[int]  # one per image
    options: Any  # the pipeline's SampleOptions
    future: Future = field(default_factory=Future)  # -> list[str]: base64 PNG per image
    arrived: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> tuple:
        return astuple(self.options)  # jobs with identical sampling options may share a model call


def png_base64(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


class Batcher:
    def __init__(self, pipe, max_batch: int, max_wait_ms: float, max_queue: int):
        self.pipe, self.max_batch, self.max_wait, self.max_queue = pipe, max_batch, max_wait_ms / 1000, max_queue
        self._cond = threading.Condition()
        self._queue: deque[Job] = deque()
        self._stopping, self._why = False, ""
        self._thread = threading.Thread(target=self._run, name="wordbrush-model", daemon=True)
        self._seconds_per_image: float | None = None  # running average, for Retry-After
        self.batches = self.images = self.dropped = 0  # counters (read by /healthz and tests)

    # ------------------------------------------------------------------------------------------ the event loop's side

    def start(self) -> "Batcher":
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    def submit(self, prompts: list[str], seeds: list[int], options) -> Future:
        job = Job(prompts, seeds, options)
        with self._cond:
            if self._stopping:
                raise Stopped(self._why)
            if len(self._queue) >= self.max_queue:
                raise QueueFull(len(self._queue), self._retry_after())
            self._queue.append(job)
            self._cond.notify_all()
        job.future.add_done_callback(lambda f: self._forget(job) if f.cancelled() else None)
        return job.future

    def wait_for(self, predicate: Callable[["Batcher"], bool], timeout: float) -> bool:
        """Block until predicate(self) holds (checked whenever the queue changes); False on timeout. For tests."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def stop(self, timeout: float | None = 30.0) -> None:
        self._refuse_all("the server is shutting down")
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _refuse_all(self, reason: str) -> None:
        """Stop taking work, and fail what waits (a batch being drawn still completes)."""
        with self._cond:
            self._stopping, self._why = True, reason
            left, self._queue = list(self._queue), deque()
            self._cond.notify_all()
        for job in left:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(Stopped(reason))

    def _forget(self, job: Job) -> None:
        """A job cancelled before it was drawn (cancel() fails once the worker has taken it)."""
        with self._cond:
            if job in self._queue:
                self._queue.remove(job)
            self.dropped += 1
            self._cond.notify_all()

    def _retry_after(self) -> int:
        queued = sum(len(j.seeds) for j in self._queue)
        per_image = self._seconds_per_image or 1.0 / self.max_batch
        return max(1, min(60, math.ceil(queued * per_image)))

    # ----------------------------------------------------------------------------------------------- the worker

    def _run(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                self._draw(batch)
        except BaseException:  # a bug here must not leave requests waiting forever: refuse them, and all new ones
            log.exception("the model worker stopped")
            self._refuse_all("the model worker stopped")
            raise

    def _images_like(self, first: Job) -> int:
        return sum(len(j.seeds) for j in self._queue if j.key == first.key)

    def _next_batch(self) -> list[Job] | None:
        with self._cond:
            while True:
                self._cond.wait_for(lambda: self._queue or self._stopping)
                if self._stopping:
                    return None
                first = self._queue[0]
                deadline = first.arrived + self.max_wait
                while (not self._stopping and self._queue and self._queue[0] is first
                       and self._images_like(first) < self.max_batch):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._stopping:
                    return None
                if not self._queue or self._queue[0] is not first:
                    continue  # the first job was cancelled: a new window for the new oldest one
                batch, images = [], 0
                for job in list(self._queue):
                    if job.key != first.key:
                        continue
                    if batch and images + len(job.seeds) > self.max_batch:
                        break
                    self._queue.remove(job)
                    if not job.future.set_running_or_notify_cancel():
                        continue  # cancelled a moment ago; _forget counts it
                    batch.append(job)
                    images += len(job.seeds)
                    if images >= self.max_batch:
                        break
                self._cond.notify_all()
                if batch:
                    return batch

    def _draw(self, batch: list[Job]) -> None:
        prompts = [p for job in batch for p in job.prompts]
        seeds = [s for job in batch for s in job.seeds]
        options = batch[0].options
        start = time.monotonic()
        try:
            images, _ = self.pipe.draw(prompts, seeds, options, batch_size=len(prompts) * options.candidates)
            encoded = [png_base64(im) for im in images]
        except Exception as e:  # the clients get a 500 without the details; the log gets the traceback
            log.exception("drawing a batch of %d images failed", len(prompts))
            for job in batch:
                job.future.set_exception(e)
            return
        per_image = (time.monotonic() - start) / len(prompts)
        with self._cond:
            self.batches += 1
            self.images += len(prompts)
            self._seconds_per_image = per_image if self._seconds_per_image is None else \
                0.8 * self._seconds_per_image + 0.2 * per_image
            self._cond.notify_all()
        at = 0
        for job in batch:
            job.future.set_result(encoded[at : at + len(job.seeds)])
            at += len(job.seeds)
