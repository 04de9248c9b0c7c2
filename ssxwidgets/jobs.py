"""The job runner: computations off the kernel's main thread, newest wins.

One worker thread per runner takes the newest submitted job, runs it, and
delivers each partial result through a callback. Submitting a job cancels the
one running (it stops within one batch) and drops any still waiting, so a burst
of parameter changes ends with exactly one job running: the last. The check
"is this job still the newest?" and the delivery happen under one lock, the
same lock that bumps the job id, so an older result can never be delivered
after a newer job started.

Usage::

    runner = JobRunner(on_result=show, on_error=report)
    runner.submit(lambda cancelled: ssx.stream(model, x, cancel=cancelled))
    runner.close()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ._log import logger

__all__ = ["JobRunner"]

Work = Callable[[Callable[[], bool]], Iterator[Any]]


class JobRunner:
    """Runs the newest job on a worker thread and streams its results.

    Parameters
    ----------
    on_result
        Called as ``on_result(job_id, result)`` for every partial result of
        the newest job, under the runner's lock (keep it quick: set traits).
    on_error
        Called as ``on_error(job_id, exception)`` when the newest job fails.
    on_done
        Called as ``on_done(job_id, seconds)`` when the newest job finishes.
    name
        The worker thread's name, for logs and debuggers.
    """

    def __init__(
        self,
        on_result: Callable[[int, Any], None],
        on_error: Callable[[int, BaseException], None] | None = None,
        on_done: Callable[[int, float], None] | None = None,
        name: str = "ssx-jobs",
    ) -> None:
        self._on_result = on_result
        self._on_error = on_error
        self._on_done = on_done
        self._name = name
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._job_id = 0
        self._pending: Work | None = None
        self._running = False
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def job_id(self) -> int:
        """The id of the newest job submitted (0 before any)."""
        return self._job_id

    @property
    def busy(self) -> bool:
        """Whether a job is running or waiting."""
        with self._lock:
            return self._running or self._pending is not None

    @property
    def lock(self) -> threading.RLock:
        """The lock under which results are delivered; hold it to read or
        change state the callbacks also touch."""
        return self._lock

    def submit(self, work: Work) -> int:
        """Cancel what runs, queue `work`, and return its job id.

        `work` receives a ``cancelled()`` callable and returns an iterator of
        results; it should poll ``cancelled()`` between batches.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("this job runner is closed")
            self._job_id += 1
            self._pending = work
            self._ensure_thread()
            self._wake.notify_all()
            logger.debug("job %s submitted", self._job_id)
            return self._job_id

    def cancel(self) -> None:
        """Cancel the running job and drop any waiting one."""
        with self._lock:
            self._job_id += 1
            self._pending = None

    def close(self, timeout: float = 10.0) -> None:
        """Cancel everything and stop the worker thread."""
        with self._lock:
            self._closed = True
            self._job_id += 1
            self._pending = None
            self._wake.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no job runs or waits; ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._running or self._pending is not None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._wake.wait(remaining)
        return True

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._loop, name=self._name, daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._closed:
                    self._wake.wait()
                if self._closed:
                    self._wake.notify_all()
                    return
                work, job_id = self._pending, self._job_id
                self._pending, self._running = None, True
            assert work is not None
            try:
                self._execute(work, job_id)
            finally:
                with self._lock:
                    self._running = False
                    self._wake.notify_all()

    def _execute(self, work: Work, job_id: int) -> None:
        def cancelled() -> bool:
            return self._job_id != job_id

        started = time.perf_counter()
        try:
            for result in work(cancelled):
                with self._lock:
                    if cancelled():
                        break
                    self._on_result(job_id, result)
        except Exception as error:  # shown in the widget, not swallowed
            with self._lock:
                if cancelled():
                    return
                logger.warning("job %s failed: %s", job_id, error)
                if self._on_error is not None:
                    self._on_error(job_id, error)
            return
        seconds = time.perf_counter() - started
        with self._lock:
            if cancelled():
                logger.info("job %s cancelled after %.3f s", job_id, seconds)
                return
            logger.info("job %s finished in %.3f s", job_id, seconds)
            if self._on_done is not None:
                self._on_done(job_id, seconds)
