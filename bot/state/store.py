"""The bot's state behind one small interface: used nonces, two-person requests, audit rows.

Two real backends implement it. SQLite (bot/store_sqlite.py) is the default, so a single
process, or several gunicorn workers on one machine, need nothing else. Redis
(bot/store_redis.py) is used when REDIS_URL is set, so web processes on several machines share
one state. Both give the same guarantees, and one test suite checks both.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

AUDIT_REQUIRED_KEYS = ("ts", "action", "actor", "session_id", "outcome")
AUDIT_USER_KEYS = ("actor", "requester", "approver")
MAX_AUDIT_LIMIT = 1000


class StoreError(RuntimeError):
    """The store failed in a way the caller should report as one sentence, not a traceback."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached or opened (Redis down, SQLite file locked or unwritable)."""


@runtime_checkable
class Store(Protocol):
    """What commands, approvals, jobs and audit need from shared state. Safe across threads."""

    def consume_nonce(self, nonce: str, *, ttl_seconds: float) -> bool:
        """True exactly once per nonce, across threads and processes.

        The nonce is remembered for at least `ttl_seconds` and may be forgotten after that, so
        the TTL must outlast the token that carries it.
        """
        ...

    def epoch(self) -> str:
        """A random id created the first time the store is used and kept in the store itself.

        It stays the same for as long as the store keeps its data, across processes and
        restarts; a store that lost its data (an emptied Redis, a deleted SQLite file) gets a
        new one, which is how approvals issued before the loss are told apart.
        """
        ...

    def put_request(self, request_id: str, record: dict[str, Any], *, ttl_seconds: float) -> None:
        """Store (or replace) a two-person request; `record["state"]` must be a string."""
        ...

    def create_request(
        self, request_id: str, record: dict[str, Any], *, ttl_seconds: float
    ) -> bool:
        """Store a record only when no live one has that id: True exactly once per id, so a
        job delivered twice cannot start the same action twice."""
        ...

    def find_requests(self, prefix: str) -> list[dict[str, Any]]:
        """Every live record whose id starts with `prefix` (recovery scans its own kind)."""
        ...

    def get_request(self, request_id: str) -> dict[str, Any] | None:
        """The request record, or None when unknown or expired."""
        ...

    def transition_request(
        self, request_id: str, *, expect_state: str, new_state: str, changes: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Atomic compare-and-set on `record["state"]`.

        Returns the new record (old record, updated with `changes`, with `state=new_state`), or
        None when the request is gone or its state was not `expect_state` (someone else won).
        The request keeps its original expiry.
        """
        ...

    def add_audit(self, entry: dict[str, Any]) -> None:
        """Append one audit row: ts (epoch seconds, required), action, actor, session_id, outcome
        and optionally requester, approver and anything else JSON-serialisable."""
        ...

    def recent_audit(
        self, *, limit: int = 10, session_id: str | None = None, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first (by ts, then insertion). `user_id` matches actor, requester or approver."""
        ...

    def ping(self) -> None:
        """Raise StoreUnavailable when the backend cannot be reached (`python -m bot check`)."""
        ...

    def close(self) -> None:
        """Release connections; the store must not be used afterwards."""
        ...


def new_epoch() -> str:
    """A fresh store epoch: 72 random bits, 12 URL-safe characters (short, inside tokens)."""
    return secrets.token_urlsafe(9)


def check_ttl(ttl_seconds: float) -> float:
    """A TTL must be a positive, finite number of seconds; anything else is a caller bug."""
    if (
        isinstance(ttl_seconds, bool)
        or not isinstance(ttl_seconds, int | float)
        or not math.isfinite(ttl_seconds)
        or ttl_seconds <= 0
    ):
        raise ValueError("ttl_seconds must be a positive number of seconds.")
    return float(ttl_seconds)


def check_request_record(record: Mapping[str, Any]) -> None:
    """Compare-and-set works on `state`, so a request without one could never move on."""
    if not isinstance(record, Mapping) or not isinstance(record.get("state"), str):
        raise ValueError('A request record must be a dict with a string "state".')


def next_request_record(
    record: Mapping[str, Any], new_state: str, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """The record after a transition; `new_state` wins over a "state" key in `changes`."""
    return {**record, **changes, "state": new_state}


def check_audit_entry(entry: Mapping[str, Any]) -> float:
    """Only `ts` is enforced (ordering needs it); returns it.

    The other AUDIT_REQUIRED_KEYS are the callers' contract, but a row that lacks one is still
    stored: losing the record of an action that already ran would be worse than a gap in it.
    """
    if not isinstance(entry, Mapping) or "ts" not in entry:
        raise ValueError("An audit entry must be a dict with a ts.")
    ts = entry["ts"]
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise ValueError("Audit entry ts must be epoch seconds as a number.")
    return float(ts)


def audit_users(entry: Mapping[str, Any]) -> list[str]:
    """The distinct user ids a row concerns, in a stable order (actor, requester, approver)."""
    users: list[str] = []
    for key in AUDIT_USER_KEYS:
        value = entry.get(key)
        if isinstance(value, str) and value and value not in users:
            users.append(value)
    return users


def clamp_limit(limit: int) -> int:
    """0 or less asks for nothing; huge limits are capped so one query cannot stall the bot."""
    return max(0, min(int(limit), MAX_AUDIT_LIMIT))
