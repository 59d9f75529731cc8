"""One ngrok budget per account, shared by every process: SQLite on one machine, Redis across.

The rule is the one of bot.ngrok.pacing (at most N requests in ANY rolling window, a request
counted from its start until `per_seconds` after its finish, a tenth kept for urgent work);
here the log of counted requests lives in the state file or in Redis instead of in one
process, so web workers, job consumers and machines draw on the same 120 per 60 s.

Why not a kept library (both wheels were downloaded and their source read):
- pyrate-limiter 4.5.1: `SQLiteBucket.put` runs its COUNT in autocommit and its INSERT in a
  second transaction (Python's sqlite3 opens a transaction only before DML), so two
  processes both see N-1 and both insert. Two processes on one file admitted 21-23 requests
  in a 2 s window with `Rate(20, 2000)` (three runs); only its optional `filelock` mode
  serialises them. Its buckets log the *acquire* time and have no way to move an entry to
  the request's finish, so a request that waits in flight (slow API, a 4-deep queue) can put
  two windows' worth into one of the server's windows. It has no reserve; a reserve needs
  two limiters over one table, and each Limiter starts its own leak thread.
- limits 5.8.0: no SQLite storage at all (the default one-machine setup), its `redis` extra
  requires redis<8 (we ship 8.1.0), its moving window is a list trimmed to the limit (a second,
  larger limit over the same key for urgent work would be trimmed away), and it only
  answers hit/miss: no "in flight until it finishes".
So the window is written here: one SQL table under BEGIN IMMEDIATE, one Redis sorted set
changed by Lua scripts, both deciding with `window_wait`.

Each claim is an entry whose `until` is a lease (`lease_seconds` ahead) while the request is
in flight, and its finish time once done; a process killed mid-request therefore holds its
place for at most lease + window. When the shared log cannot be reached, this process falls
back to its own in-process Pacer and says so in the log, rather than stop all ngrok calls.
The in-flight cap stays per process (InFlightGate).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from bot.ngrok.pacing import InFlightGate, Pacer, key_fingerprint, limit_for
from bot.state.store import StoreError

log = logging.getLogger("ngrok_ops.budget")

DEFAULT_LEASE_SECONDS = 60.0


class BudgetLog(Protocol):
    """The shared log of counted requests (SQLite or Redis)."""

    def claim(
        self, account: str, *, limit: int, per_seconds: float, lease_seconds: float
    ) -> tuple[str | None, float]:
        """(token, 0) when a place was taken, else (None, seconds to wait)."""
        ...

    def finish(self, account: str, token: str) -> None:
        """Marks the request done now: it counts for `per_seconds` more."""
        ...

    def used(self, account: str, *, per_seconds: float) -> int:
        """Requests counted in the window now (in flight or recently finished)."""
        ...

    def close(self) -> None: ...


class SharedBudget:
    """A `bot.ngrok.pacing.Budget` over a shared log, for one account."""

    def __init__(
        self,
        budget_log: BudgetLog,
        api_key: str,
        *,
        max_requests: int = 120,
        per_seconds: float = 60.0,
        max_in_flight: int = 4,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_requests < 1 or per_seconds <= 0 or lease_seconds <= 0:
            raise ValueError("max_requests, per_seconds and lease_seconds must be positive")
        self._log = budget_log
        self.account = key_fingerprint(api_key)[:32]  # never the key itself
        self.max_requests = max_requests
        self.per_seconds = per_seconds
        self.lease_seconds = lease_seconds
        self._sleep = sleep
        self._gate = InFlightGate(max_in_flight)
        self._fallback = Pacer(
            max_requests=max_requests, per_seconds=per_seconds, max_in_flight=max_in_flight
        )

    def __repr__(self) -> str:
        rule = f"{self.max_requests}/{self.per_seconds:g}s"
        return f"SharedBudget(account={self.account[:8]}…, {rule})"

    def _claim(self, urgent: bool) -> str:
        """Waits for a place in the shared window; raises StoreError when it is unreachable."""
        limit = limit_for(self.max_requests, urgent=urgent)
        while True:
            token, wait = self._log.claim(
                self.account,
                limit=limit,
                per_seconds=self.per_seconds,
                lease_seconds=self.lease_seconds,
            )
            if token is not None:
                return token
            self._sleep(min(wait, self.per_seconds))

    @contextmanager
    def slot(self, *, urgent: bool = False) -> Iterator[None]:
        """Blocks until a request may be sent; hold it for the whole request. The window is
        claimed before the in-flight gate, so waiting listings never hold a gate place."""
        token: str | None = None
        try:
            token = self._claim(urgent)
        except StoreError as exc:
            log.warning("shared ngrok budget unavailable, pacing this process alone: %s", exc)
        if token is None:
            with self._fallback.slot(urgent=urgent):
                yield
            return
        try:
            with self._gate.hold(urgent=urgent):
                yield
        finally:
            try:
                self._log.finish(self.account, token)
            except StoreError as exc:  # the lease ends the entry anyway
                log.warning("could not mark an ngrok request done in the shared budget: %s", exc)

    def used(self) -> int:
        return self._log.used(self.account, per_seconds=self.per_seconds)
