"""A short-lived, single-flight cache of fleet scans.

During an incident many people list the same fleet at once, and every Older / Newer click
re-runs its query. Each scan pages through the whole API answer, so without sharing, 50
people asking at once cost 50 scans of the account's 120-requests-a-minute budget. Callers
asking for the same (account, filter) while a scan runs wait for it; results are reused
for `ttl_seconds`; an action on the account drops them, so nobody sees a stopped agent
as online after the record says it stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.ngrok.models import TunnelSession

Key = tuple[str, str]


@dataclass
class _Entry:
    done: threading.Event = field(default_factory=threading.Event)
    sessions: list[TunnelSession] | None = None
    error: BaseException | None = None
    at: float = 0.0
    generation: int = 0


class FleetCache:
    """Scans per (account, CEL filter), shared by concurrent callers."""

    def __init__(self, *, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[Key, _Entry] = {}
        self._generations: dict[str, int] = {}
        self._sizes: dict[Key, int] = {}

    def last_size(self, account: str, cel: str | None) -> int | None:
        """How many sessions the last finished scan of this key found (for progress
        estimates); None before the first."""
        with self._lock:
            return self._sizes.get((account, cel or ""))

    def peek(self, account: str, cel: str | None) -> list[TunnelSession] | None:
        """The finished, fresh scan of this key if there is one; never scans (None)."""
        key = (account, cel or "")
        with self._lock:
            entry = self._entries.get(key)
            if (
                entry is None
                or not entry.done.is_set()
                or entry.error is not None
                or entry.sessions is None
                or entry.generation != self._generations.get(account, 0)
                or self._clock() - entry.at >= self._ttl
            ):
                return None
            return list(entry.sessions)

    def get(
        self, account: str, cel: str | None, scan: Callable[[], list[TunnelSession]]
    ) -> list[TunnelSession]:
        """The cached scan, the one in flight, or a new one run by this caller."""
        key = (account, cel or "")
        with self._lock:
            self._prune()
            generation = self._generations.get(account, 0)
            entry = self._entries.get(key)
            fresh = (
                entry is not None
                and entry.generation == generation
                and (not entry.done.is_set() or self._clock() - entry.at < self._ttl)
                and entry.error is None
            )
            owner = not fresh
            if owner:
                entry = _Entry(generation=generation)
                self._entries[key] = entry
        assert entry is not None
        if owner:
            try:
                entry.sessions = scan()
                with self._lock:
                    if len(self._sizes) > 512:  # typed filters must not pile up in memory
                        self._sizes.clear()
                    self._sizes[key] = len(entry.sessions)
            except BaseException as error:
                entry.error = error
                raise
            finally:
                entry.at = self._clock()
                entry.done.set()
            return list(entry.sessions)
        entry.done.wait()
        if entry.error is not None:
            raise entry.error
        return list(entry.sessions or [])

    def _prune(self) -> None:
        """Drops finished scans past their TTL, so typed filters do not pile up in memory."""
        now = self._clock()
        stale = [k for k, e in self._entries.items() if e.done.is_set() and now - e.at >= self._ttl]
        for key in stale:
            del self._entries[key]

    def invalidate(self, account: str) -> None:
        """Forgets every scan of an account (after a restart, stop or update)."""
        with self._lock:
            self._generations[account] = self._generations.get(account, 0) + 1
            for key in [k for k in self._entries if k[0] == account]:
                if self._entries[key].done.is_set():
                    del self._entries[key]
