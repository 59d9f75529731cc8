"""A process that lists tunnel sessions through the shared ngrok budget, for the tests and
bench/budget.py that need several real processes on one account.

    python -m tests.budget_child '<json config>'

It prints "ready", waits for a line on stdin (so every process starts together), then runs
`threads` listing threads (each `requests` list calls, or until `seconds` have passed) and,
with `urgent_every` > 0, one thread that reads a session as urgent at that interval. It
prints one JSON line: calls that succeeded, calls refused with 429, other errors, and the
urgent reads' durations. The client never retries (retry_budget 0), so a 429 is seen.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from bot.ngrok.client import NgrokClient
from bot.ngrok.errors import NgrokError, RateLimited
from bot.state.backends import open_budget_log
from bot.state.budget import SharedBudget


def run(config: dict[str, Any]) -> dict[str, Any]:
    """Lists (and probes) as configured; returns the counts."""
    budget_log = open_budget_log(redis_url=config["redis_url"], sqlite_path=config["sqlite_path"])
    budget = SharedBudget(
        budget_log,
        config["api_key"],
        max_requests=config["max_requests"],
        per_seconds=config["per_seconds"],
        max_in_flight=config.get("max_in_flight", 4),
    )
    client = NgrokClient(
        config["api_key"], base_url=config["base_url"], pacer=budget, retry_budget=0.0
    )
    counts = {"ok": 0, "rate_limited": 0, "errors": [], "urgent_seconds": []}
    lock = threading.Lock()
    deadline = time.monotonic() + config.get("seconds", 3600.0)
    stop = threading.Event()

    def record(outcome: str | Exception) -> None:
        with lock:
            if isinstance(outcome, RateLimited):
                counts["rate_limited"] += 1
            elif isinstance(outcome, Exception):
                counts["errors"].append(repr(outcome))
            else:
                counts[outcome] += 1

    def lister() -> None:
        for _ in range(config.get("requests", 10**9)):
            if time.monotonic() >= deadline:
                return
            try:
                client.list_sessions_page(limit=1)
                record("ok")
            except NgrokError as exc:
                record(exc)

    def prober() -> None:
        session_id = config["session_id"]
        while not stop.wait(config["urgent_every"]):
            started = time.monotonic()
            try:
                client.get_session(session_id, urgent=True)
                record("ok")
            except NgrokError as exc:
                record(exc)
            with lock:
                counts["urgent_seconds"].append(time.monotonic() - started)

    print("ready", flush=True)
    sys.stdin.readline()
    listers = [threading.Thread(target=lister) for _ in range(config.get("threads", 2))]
    probe = threading.Thread(target=prober) if config.get("urgent_every") else None
    for thread in [*listers, *([probe] if probe else [])]:
        thread.start()
    for thread in listers:
        thread.join()
    if not listers:  # a probe alone runs for the whole time
        time.sleep(max(0.0, deadline - time.monotonic()))
    stop.set()
    if probe:
        probe.join()
    client.close()
    budget_log.close()
    return counts


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))), flush=True)
