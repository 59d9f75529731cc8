"""A process that tries to run the watcher's scan for one account as often as it can, for
the test that proves one watcher per account across processes.

    python -m tests.watch_child '<json: env, seconds, poll, min_down>'

Prints "ready", waits for a line on stdin (so both processes start together), calls
commands.watch.scan_once every 50 ms for `seconds`, and prints one JSON line: how often it
tried and how often it actually scanned (held the lock and won the state write).
"""

from __future__ import annotations

import json
import sys
import time

from bot.app import create_app
from commands.watch import scan_once, watched
from tests.watch_fixtures import build


def main() -> None:
    config = json.loads(sys.argv[1])
    deps = build(config["env"], poll=config["poll"], min_down=config["min_down"])
    create_app(deps, token_verification=False)
    cfg = watched(deps)["default"]
    print("ready", flush=True)
    sys.stdin.readline()
    attempts = scans = 0
    deadline = time.monotonic() + float(config["seconds"])
    try:
        while time.monotonic() < deadline:
            attempts += 1
            if scan_once(deps, "default", cfg) is not None:
                scans += 1
            time.sleep(0.05)
    finally:
        deps.close()
    print(json.dumps({"attempts": attempts, "scans": scans}), flush=True)


if __name__ == "__main__":
    main()
