"""Work that outlives the 3-second ack, on a bounded pool of its own.

Bolt's listener pool only acks and hands work over, so a slow ngrok API (or a rate-limit
wait) can never delay the ack of another request. Errors in jobs are logged with their
traceback and reported through the job's own `on_error`, never swallowed.

The workers are daemon threads: a job that waits (for a restarted agent to come back, for
the delay before an update's restart) must not hold a shutting-down process hostage. On a
graceful stop, `drain_all` (called from gunicorn's worker_exit hook and by Socket Mode's
shutdown) lets running jobs finish for a bounded time and wakes every `pause`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger("ngrok_ops.jobs")

_ALL: weakref.WeakSet[Jobs] = weakref.WeakSet()


class Stopping(Exception):
    """Raised by `Jobs.pause` when the process is shutting down."""


class Jobs:
    """A fixed set of daemon worker threads fed by one queue, plus timers."""

    def __init__(self, *, max_workers: int) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], Any] | None]
        self._queue = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._busy = 0
        self._pending = 0
        self._timers: set[threading.Timer] = set()
        self._threads = [
            threading.Thread(target=self._work, name=f"ngrok-ops-job-{n}", daemon=True)
            for n in range(max_workers)
        ]
        for thread in self._threads:
            thread.start()
        _ALL.add(self)

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Runs fn(*args) on the pool; an exception is logged and passed to on_error."""
        if self._stopping.is_set():
            log.warning("not starting job %s: shutting down", _name(fn))
            if on_error is not None:
                _report(on_error, Stopping("shutting down"), fn)
            return
        with self._idle:
            self._pending += 1
        self._queue.put((fn, args, on_error))

    def later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        """Runs fn(*args) on the pool after `delay` seconds (expiry, restarts)."""
        timer = threading.Timer(delay, self._fire, args=(fn, args))
        timer.daemon = True
        with self._idle:
            self._timers = {t for t in self._timers if t.is_alive()}
            self._timers.add(timer)
        timer.start()

    def pause(self, seconds: float) -> None:
        """Sleeps inside a job; raises Stopping at once when the process shuts down."""
        if self._stopping.wait(seconds):
            raise Stopping

    def _fire(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.submit(fn, *args)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, args, on_error = item
            with self._idle:
                self._pending -= 1
                self._busy += 1
            try:
                fn(*args)
            except Stopping:
                log.info("job %s stopped by the shutdown", _name(fn))
            except Exception as error:
                log.exception("job %s failed", _name(fn))
                if on_error is not None:
                    _report(on_error, error, fn)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """True once no job is queued or running (tests and graceful shutdown)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy or self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def shutdown(self, *, timeout: float = 10.0) -> None:
        """Stops timers, wakes paused jobs and gives running ones `timeout` seconds."""
        self._stopping.set()
        with self._idle:
            timers = set(self._timers)
        for timer in timers:
            if timer.is_alive():
                # Work that was promised for later (the restart that completes an update,
                # a request's expiry) will not happen in this process: say which.
                args = list(timer.args or ())
                fn = args[0] if args else None
                log.warning("shutting down: cancelled scheduled job %s", _name(fn))
            timer.cancel()
        if not self.wait_idle(timeout):
            log.warning("shutting down with %d job(s) still running", self._busy)
        for _ in self._threads:
            self._queue.put(None)


def drain_all(timeout: float = 10.0) -> None:
    """Shuts down every pool of this process (gunicorn's worker_exit hook calls it)."""
    for jobs in list(_ALL):
        jobs.shutdown(timeout=timeout)


def _name(fn: object) -> str:
    return getattr(fn, "__qualname__", repr(fn))


def _report(on_error: Callable[[BaseException], None], error: BaseException, fn: Any) -> None:
    try:
        on_error(error)
    except Exception:
        log.exception("reporting the failure of job %s failed too", _name(fn))
