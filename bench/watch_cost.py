"""What does the watcher spend of an account's ngrok budget?

    python bench/watch_cost.py [--poll 60] [--share 0.25] [--measure-agents 100]
                               [--measure-scans 20]

For fleets of 100, 1,000 and 10,000 agents at the default settings (poll_interval 60 s,
budget_share 0.25, 120 requests per 60 s with a tenth kept for approved actions), prints
the requests one scan costs (pages of 100, bot.watch.cost), the interval the watcher
actually uses (stretched when the fleet is too large for poll_interval), requests per hour,
and that as a share of the account's whole budget (7,200 requests an hour) and of the
non-urgent part the watcher may use (6,480 an hour).

Then it measures the small case against the local stand-in (tests/servers/ngrok_api.py):
`--measure-scans` real scans (commands.watch.scan_once, the watcher's own code, through
the shared budget and a real store) of a `--measure-agents` fleet, counting the GET
requests the server saw per scan, to check the computed pages against the wire.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.watch.cost import cadence, non_urgent_per_minute

FLEETS = (100, 1_000, 10_000)


def computed(poll: float, share: float) -> None:
    whole = 120 * 60.0  # requests an hour: 120 per 60 s
    non_urgent = non_urgent_per_minute(120, 60.0) * 60.0
    print(f"poll_interval {poll:g} s, budget_share {share:g}; budget {whole:.0f}/h "
          f"({non_urgent:.0f}/h non-urgent)")  # fmt: skip
    print(f"{'agents':>8} {'req/scan':>8} {'interval':>9} {'req/hour':>9} "
          f"{'of budget':>9} {'of non-urgent':>13}")  # fmt: skip
    for agents in FLEETS:
        pace = cadence(agents, poll_interval=poll, budget_share=share)
        note = "  (stretched)" if pace.stretched else ""
        print(
            f"{agents:>8,} {pace.pages:>8} {pace.interval:>8.0f}s {pace.requests_per_hour:>9.0f} "
            f"{pace.requests_per_hour / whole:>9.1%} {pace.requests_per_hour / non_urgent:>13.1%}"
            f"{note}"
        )


def measured(agents: int, scans: int) -> None:
    from bot.deps import build_deps
    from bot.settings.env import load_settings
    from commands.watch import scan_once, watched
    from tests.servers.ngrok_api import NgrokApiServer
    from tests.servers.slack_api import SlackApiServer

    with (
        NgrokApiServer(sessions=agents, rate_limit=None) as ngrok,
        SlackApiServer() as slack,
        tempfile.TemporaryDirectory() as tmp,
    ):
        settings = load_settings(
            {"SLACK_BOT_TOKEN": slack.bot_token, "SLACK_SIGNING_SECRET": "bench-secret-123",
             "SLACK_API_URL": slack.base_url, "NGROK_API_KEY": "ngrok-test-api-key-0123456789",
             "NGROK_API_URL": ngrok.base_url, "STATE_PATH": f"{tmp}/state.sqlite3"},
            config_text="alerts: {channel: C0ALERTS, poll_interval: 2s, budget_share: 1}\n",
            config_source="bench",
        )  # fmt: skip
        deps = build_deps(settings)
        cfg = watched(deps)["default"]
        ngrok.clear_log()
        started = time.monotonic()
        done = 0
        for _ in range(scans):
            if scan_once(deps, "default", cfg) is not None:
                done += 1
            time.sleep(1.85)  # the lock lasts 0.9 of the 2 s interval
        elapsed = time.monotonic() - started
        gets = len(ngrok.requests_matching("GET", "/tunnel_sessions"))
        deps.close()
    expected = cadence(agents, poll_interval=60, budget_share=0.25).pages
    print(f"\nmeasured: {agents} agents, {done} scans in {elapsed:.1f} s, {gets} GET requests "
          f"= {gets / max(done, 1):.2f} per scan (computed {expected}); at poll 60 s that is "
          f"{gets / max(done, 1) * 60:.0f} requests/h")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poll", type=float, default=60.0)
    parser.add_argument("--share", type=float, default=0.25)
    parser.add_argument("--measure-agents", type=int, default=100)
    parser.add_argument("--measure-scans", type=int, default=10)
    args = parser.parse_args()
    computed(args.poll, args.share)
    if args.measure_scans:
        measured(args.measure_agents, args.measure_scans)


if __name__ == "__main__":
    main()
