"""What watching a fleet costs in ngrok API requests, and how often it may scan.

A scan pages through `GET /tunnel_sessions` 100 agents at a time, so it costs
ceil(agents / 100) requests (at least one). The watcher may use `budget_share` of the part
of the account's budget that is not kept for approved actions (bot.ngrok.pacing); when a
fleet is too large for `poll_interval`, it scans less often instead of spending more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PAGE_SIZE = 100


@dataclass(frozen=True)
class Cadence:
    pages: int  # requests per scan
    interval: float  # seconds between scans actually used
    stretched: bool  # True when the fleet is too large for the configured interval
    allowed_per_minute: float  # the watcher's share of the non-urgent budget

    @property
    def requests_per_hour(self) -> float:
        return self.pages * 3600.0 / self.interval


def pages_for(agents: int) -> int:
    return max(1, math.ceil(agents / PAGE_SIZE))


def non_urgent_per_minute(max_requests: int, window_seconds: float) -> float:
    """The budget ordinary reads may use: the window minus its urgent reserve (a tenth)."""
    return (max_requests - max_requests // 10) * 60.0 / window_seconds


def cadence(
    agents: int,
    *,
    poll_interval: float,
    budget_share: float,
    max_requests: int = 120,
    window_seconds: float = 60.0,
) -> Cadence:
    """How often a fleet of `agents` can be scanned within the watcher's share."""
    pages = pages_for(agents)
    allowed = budget_share * non_urgent_per_minute(max_requests, window_seconds)
    needed = pages * 60.0 / allowed  # seconds per scan at exactly the share
    interval = max(poll_interval, needed)
    return Cadence(pages, interval, needed > poll_interval, allowed)
