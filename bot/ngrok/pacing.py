"""Client-side pacing for the ngrok API: a rolling-window limit, an in-flight cap, and backoff.

The server allows at most N requests in ANY rolling window (120 per 60 s). A token bucket
with burst N that also refills lets almost 2N through within one window, so this keeps a log
of when each request finished instead: a new request may start only while fewer than N
requests are in flight or finished within the last `per_seconds`. Logging the *finish* time
(not the start) is conservative: the server counts a request somewhere between the two.

A tenth of the window is kept for urgent requests (the POST of an approved action), so
people paging through a large fleet during an incident can never make an approved stop
wait for the next window.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# How long to wait when every counted request is still in flight (nothing to expire yet).
_IN_FLIGHT_POLL = 0.05


class Pacer:
    """Thread-safe: shared by every client (and thread) that uses the same API key."""

    def __init__(
        self,
        *,
        max_requests: int = 120,
        per_seconds: float = 60.0,
        max_in_flight: int = 4,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_requests < 1 or per_seconds <= 0 or max_in_flight < 1:
            raise ValueError("max_requests, per_seconds and max_in_flight must be positive")
        self.max_requests = max_requests
        self.per_seconds = per_seconds
        self.max_in_flight = max_in_flight
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._in_flight_slots = threading.BoundedSemaphore(max_in_flight)
        self._finished: deque[float] = deque()  # finish times, ascending
        self._running = 0  # requests counted in the window and not finished yet
        self.reserved = max_requests // 10  # places only urgent requests may take

    def _try_claim(self, urgent: bool) -> float:
        """Claims a place in the window and returns 0, or returns how long to wait."""
        limit = self.max_requests if urgent else self.max_requests - self.reserved
        with self._lock:
            now = self._clock()
            while self._finished and self._finished[0] + self.per_seconds <= now:
                self._finished.popleft()
            if self._running + len(self._finished) < limit:
                self._running += 1
                return 0.0
            if not self._finished:
                return _IN_FLIGHT_POLL
            return max(self._finished[0] + self.per_seconds - now, 1e-3)

    def _release(self) -> None:
        with self._lock:
            self._running -= 1
            self._finished.append(self._clock())

    @contextmanager
    def slot(self, *, urgent: bool = False) -> Iterator[None]:
        """Blocks until a request may be sent; hold it for the whole request. Urgent
        requests may also use the reserved tenth of the window."""
        with self._in_flight_slots:
            while (wait := self._try_claim(urgent)) > 0:
                self._sleep(wait)
            try:
                yield
            finally:
                self._release()


_SHARED: dict[str, Pacer] = {}
_SHARED_LOCK = threading.Lock()


def _key_fingerprint(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def shared_pacer(api_key: str, **kwargs: Any) -> Pacer:
    """The one Pacer for this API key in this process (the limit is per account, not per
    client). `kwargs` apply only when the Pacer is first made. Keyed by a hash of the key."""
    fingerprint = _key_fingerprint(api_key)
    with _SHARED_LOCK:
        pacer = _SHARED.get(fingerprint)
        if pacer is None:
            pacer = Pacer(**kwargs)
            _SHARED[fingerprint] = pacer
        return pacer


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff: a random wait in [0, min(cap, base * 2**attempt)]."""

    base: float = 0.25
    cap: float = 8.0

    def ceiling(self, attempt: int) -> float:
        return min(self.cap, self.base * 2.0 ** min(attempt, 62))

    def delay(self, attempt: int, rand: Callable[[], float]) -> float:
        return rand() * self.ceiling(attempt)


DEFAULT_BACKOFF = Backoff()
