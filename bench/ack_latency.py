"""How long the bot takes to ack `/ngrok sessions`, with the ngrok API fast and slow.

Slack wants the HTTP 200 for a slash command within 3 s. The bot acks first and lists the
fleet on a job thread, so a slow ngrok API should lengthen the reply on the response_url,
never the ack. This starts a local ngrok API (no server rate limit, 200 sessions), a local
Slack API and the bot from the Procfile's `web:` command, fires signed slash commands
`--concurrency` at a time, and prints ack and reply percentiles for a baseline (ngrok
latency 0) and the loaded runs, measured in the same run because the machine is shared.

    python bench/ack_latency.py [--concurrency 20] [--latency 1.0] [--rounds 3]

Exits 1 when any ack took over 3 s, was not an HTTP 200, or a reply never arrived.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bot_process import SIGNING_SECRET, BotProcess, SlackSender
from tests.servers.ngrok_api import NgrokApiServer
from tests.servers.slack_api import SlackApiServer

ACK_DEADLINE = 3.0  # Slack shows the user an error when the 200 takes longer
NGROK_KEY = "2AbCdEfGhIjKlMnOpQrStUvWxYz_benchNgrokKey0123456789"
USER, CHANNEL = "U0BENCH", "C0BENCH"
BURST_CONCURRENCY, BURST_LATENCY = 50, 2.0  # the requirement
REPLY_TIMEOUT = 300.0
LIST_REPLY = "ngrok agents online"  # the fallback text of a session list


@dataclass(frozen=True)
class Sample:
    """One command: when it was sent, how long the ack took, and its response_url key."""

    sent_at: float
    ack_seconds: float
    status: int  # 0: no HTTP answer at all
    key: str


@dataclass(frozen=True)
class Result:
    name: str
    latency: float
    concurrency: int
    rounds: int
    acks: list[float]
    failed_acks: int
    replies: list[float]
    missing_replies: int
    ngrok_requests: int

    @property
    def slow_acks(self) -> int:
        return sum(1 for ack in self.acks if ack > ACK_DEADLINE) + self.failed_acks


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (with 60 samples p99 is the maximum)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(math.ceil(pct / 100 * len(ordered)) - 1, 0)]


def no_keepalive_sender(url: str) -> SlackSender:
    """Each command on a fresh connection, so every ack includes what Slack's request costs
    and gunicorn's 2 s keep-alive timeout cannot turn into a stale-connection error."""
    sender = SlackSender(url, secret=SIGNING_SECRET)
    sender.http.close()
    sender.http = httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))
    return sender


def send_one(sender: SlackSender, slack: SlackApiServer, start: threading.Barrier) -> Sample:
    url = slack.response_url()
    body = sender.command_body("sessions", user=USER, channel=CHANNEL, response_url=url)
    start.wait()
    sent_at = time.monotonic()
    try:
        status = sender.post(body, "application/x-www-form-urlencoded").status_code
    except httpx.HTTPError:
        status = 0
    return Sample(sent_at, time.monotonic() - sent_at, status, url.rsplit("/", 1)[1])


def reply_seconds(slack: SlackApiServer, sample: Sample, deadline: float) -> float | None:
    """Seconds from sending the command to its first response_url post, or None when no
    session list arrived."""
    try:
        calls = slack.wait_for(
            "response_url", 1, key=sample.key, timeout=max(deadline - time.monotonic(), 0.01)
        )
    except AssertionError:
        return None
    reply = calls[0]
    if reply.status != 200 or LIST_REPLY not in str(reply.body.get("text", "")):
        return None  # an error message or a refused message is not the list that was asked for
    return reply.at - sample.sent_at


def run_scenario(
    name: str,
    ngrok: NgrokApiServer,
    slack: SlackApiServer,
    senders: list[SlackSender],
    *,
    latency: float,
    concurrency: int,
    rounds: int,
) -> Result:
    """`rounds` bursts of `concurrency` simultaneous commands; each round waits for all its
    replies before the next one starts, so rounds do not overlap."""
    ngrok.latency = latency
    requests_before = len(ngrok.log())
    acks: list[float] = []
    replies: list[float] = []
    failed = missing = 0
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for _ in range(rounds):
            start = threading.Barrier(concurrency)
            futures = [pool.submit(send_one, senders[i], slack, start) for i in range(concurrency)]
            samples = [future.result() for future in futures]
            deadline = time.monotonic() + REPLY_TIMEOUT
            for sample in samples:
                if sample.status != 200:
                    failed += 1
                    continue
                acks.append(sample.ack_seconds)
                seconds = reply_seconds(slack, sample, deadline)
                if seconds is None:
                    missing += 1
                else:
                    replies.append(seconds)
    requests = len(ngrok.log()) - requests_before
    return Result(name, latency, concurrency, rounds, acks, failed, replies, missing, requests)


def bot_env(
    ngrok: NgrokApiServer, slack: SlackApiServer, state_dir: str, args: argparse.Namespace
) -> dict[str, str]:
    """As in tests/e2e_fixtures.py, without BOT_CONFIG: everyone may list sessions."""
    return {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.base_url,
        "NGROK_API_KEY": NGROK_KEY,
        "NGROK_API_URL": ngrok.base_url,
        "STATE_PATH": str(Path(state_dir) / "state.sqlite3"),
        "GROUP_CACHE_SECONDS": "0",
        "APPROVAL_SECRET": "bench-approval-secret-0123456789abcdef",
        "NGROK_RATE_LIMIT": str(args.bot_rate_limit),
        "NGROK_MAX_IN_FLIGHT": str(args.bot_in_flight),
        "FLEET_CACHE_SECONDS": str(args.fleet_cache),
        "LOG_LEVEL": "WARNING",
    }


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms" if seconds < 1 else f"{seconds:8.2f} s "


def ratio(value: float, base: float) -> str:
    return f"{value / base:7.2f}x" if base > 0 else "    n/a"


def ack_points(result: Result) -> list[float]:
    """p50, p90, p99 and max of the acks."""
    return [percentile(result.acks, p) for p in (50, 90, 99)] + [max(result.acks, default=0)]


def report(result: Result, baseline: Result | None) -> None:
    print(
        f"\n== {result.name}: ngrok latency {result.latency:g} s, "
        f"{result.concurrency} concurrent x {result.rounds} round(s) =="
    )
    print(
        f"  acks measured: {len(result.acks)}   over {ACK_DEADLINE:g} s or failed: "
        f"{result.slow_acks} (not HTTP 200: {result.failed_acks})"
    )
    points = ack_points(result)
    print("  ack          " + "".join(f"{p:>12}" for p in ("p50", "p90", "p99", "max")))
    print("  seconds      " + "".join(f"{fmt(v):>12}" for v in points))
    if baseline is not None:
        pairs = zip(points, ack_points(baseline), strict=True)
        print("  vs baseline  " + "".join(f"{ratio(v, b):>12}" for v, b in pairs))
    p50, p99 = (percentile(result.replies, p) for p in (50, 99))
    print(
        f"  reply on response_url: p50 {fmt(p50).strip()}, p99 {fmt(p99).strip()}, "
        f"max {fmt(max(result.replies, default=0)).strip()}"
        f"  (missing or not a list: {result.missing_replies})"
    )
    print(f"  requests the ngrok API served: {result.ngrok_requests}")


def on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--latency", type=float, default=1.0, help="ngrok seconds per request")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--bot-rate-limit",
        type=int,
        default=10_000,
        help="the bot's NGROK_RATE_LIMIT; the default 120/60 s would make replies wait minutes "
        "once the benchmark's ~300 requests exceed it (acks are unaffected either way)",
    )
    parser.add_argument(
        "--bot-in-flight", type=int, default=4, help="the bot's NGROK_MAX_IN_FLIGHT (default 4)"
    )
    parser.add_argument(
        "--fleet-cache",
        type=float,
        default=0.0,
        help="the bot's FLEET_CACHE_SECONDS; 0 (default) makes every command scan the fleet, "
        "the worst case; the production default 10 shares one scan between identical lists",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started ignoring it

    ngrok = NgrokApiServer(api_key=NGROK_KEY, sessions=200, rate_limit=None)
    slack = SlackApiServer()
    bot: BotProcess | None = None
    with tempfile.TemporaryDirectory(prefix="ack-bench-") as state_dir:
        try:
            ngrok.start()
            slack.start()
            bot = BotProcess(bot_env(ngrok, slack, state_dir, args)).start()
            print(f"bot: {bot.command}  (NGROK_RATE_LIMIT={args.bot_rate_limit}/60 s, ", end="")
            print(f"NGROK_MAX_IN_FLIGHT={args.bot_in_flight}); ngrok API: 200 sessions, 2 pages")
            width = max(args.concurrency, BURST_CONCURRENCY)
            senders = [no_keepalive_sender(bot.events_url) for _ in range(width)]
            # Warms every gunicorn, Bolt and job thread the burst will use; not reported.
            run_scenario("warm-up", ngrok, slack, senders, latency=0, concurrency=width, rounds=1)
            common = {"concurrency": args.concurrency, "rounds": args.rounds}
            baseline = run_scenario("baseline", ngrok, slack, senders, latency=0.0, **common)
            loaded = run_scenario("loaded", ngrok, slack, senders, latency=args.latency, **common)
            burst = run_scenario(
                "burst", ngrok, slack, senders,
                latency=BURST_LATENCY, concurrency=BURST_CONCURRENCY, rounds=1,
            )  # fmt: skip
            report(baseline, None)
            report(loaded, baseline)
            report(burst, baseline)
            problems = sum(r.slow_acks + r.missing_replies for r in (baseline, loaded, burst))
            print(f"\n{'FAIL' if problems else 'OK'}: ", end="")
            print(f"{problems} ack(s) over {ACK_DEADLINE:g} s, failed, or without a reply")
            if problems:
                print("bot stderr (last 40 lines):", *bot.stderr().splitlines()[-40:], sep="\n")
            return 1 if problems else 0
        except KeyboardInterrupt:
            print("\ninterrupted; cleaning up", file=sys.stderr)
            return 130
        finally:
            if bot is not None:
                ngrok.latency = 0  # the worker finishes queued jobs on SIGTERM; let them run fast
                bot.stop()
                for path in (bot._out_path, bot._err_path):
                    path.unlink(missing_ok=True)
                bot._out_path.parent.rmdir()  # BotProcess's own temporary folder, now empty
            slack.stop()
            ngrok.stop()


if __name__ == "__main__":
    sys.exit(main())
