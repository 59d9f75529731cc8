"""Client-side pacing for the ngrok API: the interface the client talks to (`Budget`), the
rolling-window rule both implementations share, an in-flight gate, and backoff.

The server allows at most N requests in ANY rolling window (120 per 60 s). A token bucket
with burst N that also refills lets almost 2N through within one window, so a budget keeps a
log of when each request finished instead: a new request may start only while fewer than N
requests are in flight or finished within the last `per_seconds`. Logging the *finish* time
(not the start) is conservative: the server counts a request somewhere between the two.

A tenth of the window is kept for urgent requests (everything an approved action sends), so
people paging through a large fleet during an incident can never make an approved stop
wait for the next window; the in-flight gate likewise keeps one place for urgent requests.

`Pacer` is the in-process budget (tests of the client, and a process alone). Every process
of one account shares `bot.state.budget.SharedBudget` instead (SQLite or Redis), which lives
in bot/state because this package imports only httpx and the standard library.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

# How long to wait when the entry that must leave the window is still in flight.
IN_FLIGHT_POLL = 0.05


class Budget(Protocol):
    """What the client needs from a budget: hold `slot()` for the whole of one request."""

    def slot(self, *, urgent: bool = False) -> AbstractContextManager[None]: ...


def urgent_reserve(max_requests: int) -> int:
    """Places of the window only urgent requests may take: a tenth (none below ten)."""
    return max_requests // 10


def limit_for(max_requests: int, *, urgent: bool) -> int:
    """How many counted requests a new request may find in the window and still start."""
    return max_requests if urgent else max_requests - urgent_reserve(max_requests)


def window_wait(
    entries: Sequence[tuple[float, bool]], now: float, per_seconds: float, limit: int
) -> float:
    """0 when a request may start now, else how long to wait before asking again.

    `entries` are the counted requests as (until, done), sorted by `until`: for a finished
    request `until` is its finish time; for one in flight it is a time in the future (its
    lease), so it counts until it finishes. Entries with `until + per_seconds <= now` must
    already be gone. The same rule runs in SQLite and, as Lua, in Redis.
    """
    over = len(entries) - limit
    if over < 0:
        return 0.0
    until, done = entries[over]
    if not done:
        return IN_FLIGHT_POLL
    return max(until + per_seconds - now, 1e-3)


class InFlightGate:
    """A per-process cap on requests in flight in which urgent requests go first and keep
    one place that other requests may not take (when the cap allows more than one), so an
    approved action never queues behind listings that are waiting or slow."""

    def __init__(self, max_in_flight: int) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be positive")
        self.max_in_flight = max_in_flight
        self._cond = threading.Condition()
        self._running = 0
        self._urgent_waiting = 0

    def _may_enter(self, urgent: bool) -> bool:
        if urgent:
            return self._running < self.max_in_flight
        cap = max(1, self.max_in_flight - 1)
        return self._running < cap and self._urgent_waiting == 0

    @contextmanager
    def hold(self, *, urgent: bool = False) -> Iterator[None]:
        """Blocks until this request may be in flight; hold it for the whole request."""
        with self._cond:
            self._urgent_waiting += urgent
            try:
                self._cond.wait_for(lambda: self._may_enter(urgent))
            finally:
                self._urgent_waiting -= urgent
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()


class Pacer:
    """The in-process budget. Thread-safe: shared by every client (and thread) that uses the
    same API key in this process; processes do not see each other's (see SharedBudget)."""

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
        self._gate = InFlightGate(max_in_flight)
        self._finished: deque[float] = deque()  # finish times, ascending
        self._running = 0  # requests counted in the window and not finished yet
        self.reserved = urgent_reserve(max_requests)

    def _try_claim(self, urgent: bool) -> float:
        """Claims a place in the window and returns 0, or returns how long to wait."""
        with self._lock:
            now = self._clock()
            while self._finished and self._finished[0] + self.per_seconds <= now:
                self._finished.popleft()
            entries = [(t, True) for t in self._finished] + [(now, False)] * self._running
            wait = window_wait(
                entries, now, self.per_seconds, limit_for(self.max_requests, urgent=urgent)
            )
            if wait == 0:
                self._running += 1
            return wait

    def _release(self) -> None:
        with self._lock:
            self._running -= 1
            self._finished.append(self._clock())

    @contextmanager
    def slot(self, *, urgent: bool = False) -> Iterator[None]:
        """Blocks until a request may be sent; hold it for the whole request. Urgent
        requests may also use the reserved tenth of the window."""
        while (wait := self._try_claim(urgent)) > 0:
            self._sleep(wait)
        try:
            with self._gate.hold(urgent=urgent):
                yield
        finally:
            self._release()


_SHARED: dict[str, Pacer] = {}
_SHARED_LOCK = threading.Lock()


def key_fingerprint(api_key: str) -> str:
    """Names an account in logs, keys and tables without the API key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def shared_pacer(api_key: str, **kwargs: Any) -> Pacer:
    """The one Pacer for this API key in this process (the limit is per account, not per
    client). `kwargs` apply only when the Pacer is first made. Keyed by a hash of the key."""
    fingerprint = key_fingerprint(api_key)
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
