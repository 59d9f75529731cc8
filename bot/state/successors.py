"""Which session id a restarted agent came back as: `successor:<old id>` records, so a later
command naming the old id can say "restarted as <new id>" instead of "no longer online"."""

from __future__ import annotations

from dataclasses import dataclass

from bot.state.store import Store

SUCCESSOR_PREFIX = "successor:"
SUCCESSOR_SECONDS = 30 * 24 * 3600
MAX_HOPS = 20


@dataclass(frozen=True)
class Successor:
    """`old_id` came back as `new_id` (after `hops` restarts) at `at` (epoch seconds)."""

    old_id: str
    new_id: str
    at: float
    hops: int = 1


def remember_successor(store: Store, old_id: str, new_id: str, *, at: float) -> None:
    store.put_request(
        SUCCESSOR_PREFIX + old_id,
        {"state": "restarted", "old_id": old_id, "new_id": new_id, "at": at},
        ttl_seconds=SUCCESSOR_SECONDS,
    )


def successor_of(store: Store, old_id: str) -> Successor | None:
    """The newest id the agent is known under, following restart after restart."""
    current, at, hops = old_id, 0.0, 0
    while hops < MAX_HOPS:
        record = store.get_request(SUCCESSOR_PREFIX + current)
        if record is None or not isinstance(record.get("new_id"), str):
            break
        current, at, hops = record["new_id"], float(record.get("at") or 0.0), hops + 1
    return Successor(old_id, current, at, hops) if hops else None
