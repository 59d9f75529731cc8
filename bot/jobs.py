"""Work that outlives the 3-second ack, on a bounded pool of its own.

Bolt's listener pool only acks and hands work over, so a slow ngrok API (or a rate-limit
wait) can never delay the ack of another request. Errors in jobs are logged with their
traceback and reported through the job's own `on_error`, never swallowed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger("ngrok_ops.jobs")


class Jobs:
    """A bounded executor plus timers, shut down together."""

    def __init__(self, *, max_workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ngrok-ops-job")
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()
        self._closed = False

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> Future[Any]:
        """Runs fn(*args) on the pool; an exception is logged and passed to on_error."""
        return self._pool.submit(self._guarded, fn, args, on_error)

    def later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        """Runs fn(*args) on the pool after `delay` seconds (used for expiry and restarts)."""
        with self._lock:
            if self._closed:
                return
            timer = threading.Timer(delay, self._fire, args=(fn, args))
            timer.daemon = True
            self._timers.add(timer)
        timer.start()

    def _fire(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        with self._lock:
            current = threading.current_thread()
            self._timers = {t for t in self._timers if t.is_alive() and t is not current}
            if self._closed:
                return
        self.submit(fn, *args)

    @staticmethod
    def _guarded(
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        on_error: Callable[[BaseException], None] | None,
    ) -> Any:
        try:
            return fn(*args)
        except Exception as error:
            log.exception("job %s failed", getattr(fn, "__qualname__", fn))
            if on_error is not None:
                try:
                    on_error(error)
                except Exception:
                    log.exception("reporting the failure of job %s failed too", fn)
            return None

    def shutdown(self, *, wait: bool = True) -> None:
        """Stops timers and waits for running jobs."""
        with self._lock:
            self._closed = True
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
