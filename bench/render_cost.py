"""CPU time per `/ngrok sessions` on a 200-session fleet: the bot's own work, nothing else.

The bot's two halves, timed with time.process_time and time.thread_time:

- **ack path**: `app.dispatch` of a signed `/ngrok sessions` slash command into the bot's
  Bolt app (`create_app(deps, process_before_response=True)`, so dispatch returns once the
  listener has verified, parsed, acked and enqueued its job on the in-memory queue);
- **job**: what the consumer runs for that command, `deps.jobs.run_now("command", payload)`
  with the very payload the listener enqueued (JSON round-tripped, as the queue stores it):
  the replay check, the listing (fleet cache warm: FLEET_CACHE_SECONDS=600 and one listing
  before timing, so no ngrok request is made), rendering and the POST to the response_url;
- **bare Bolt ack**: `app.dispatch` of the same kind of command into a `slack_bolt.App`
  with one `/ngrok` handler that only acks: the baseline, measured in the same run.

The three take turns, `--runs` times each after `--warmup` untimed turns. The local ngrok
and Slack APIs (tests/servers) run in a child process, so process_time counts only this
process, the bot: receiving the reply (about 2 ms a command when the Slack stand-in ran in a
thread here) is not the bot's work. thread_time counts only the calling thread, where the
job runs; process_time adds whatever the bot's other threads did meanwhile. When the job's
median process_time misses `--target-ms` (or with `--profile`) it prints a cProfile of
`--runs` more jobs, timed in CPU (thread_time), top functions by cumulative time. Ctrl-C
stops the child too (exit code 130); so does the parent's death (the child sees its pipe
close).

    python bench/render_cost.py [--runs 50] [--warmup 5] [--sessions 200] [--target-ms 5]
                                [--profile] [--top 10]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import logging
import multiprocessing
import os
import pstats
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slack_bolt import Ack, App, BoltRequest
from slack_sdk import WebClient

from bot.app import create_app
from bot.deps import build_deps
from bot.settings.env import load_settings
from tests.bot_process import SIGNING_SECRET, SlackSender
from tests.servers.ngrok_api import NgrokApiServer
from tests.servers.slack_api import SlackApiServer

NGROK_KEY = "2AbCdEfGhIjKlMnOpQrStUvWxYz_benchNgrokKey0123456789"
USER, CHANNEL = "U0BENCH", "C0BENCH"
LIST_REPLY = "ngrok agents online"  # the fallback text of a session list
JOB_COMMAND = "command"  # commands.jobs.JOB_COMMAND


def serve_stand_ins(conn: Connection, sessions: int) -> None:
    """The child process: the local ngrok and Slack APIs, so their threads' CPU is not
    counted as the bot's. Answers the parent over `conn` until it says "stop" or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group; the parent stops us
    ngrok = NgrokApiServer(api_key=NGROK_KEY, sessions=sessions, rate_limit=None).start()
    slack = SlackApiServer().start()
    try:
        conn.send({"ngrok": ngrok.base_url, "slack": slack.base_url, "token": slack.bot_token})
        while True:
            try:
                request, count = conn.recv()
            except EOFError:
                return
            if request == "response_urls":
                conn.send([slack.response_url() for _ in range(count)])
            elif request == "report":
                replies = slack.calls_to("response_url")
                lists = sum(1 for c in replies if LIST_REPLY in str(c.body.get("text", "")))
                conn.send({"replies": len(replies), "lists": lists, "ngrok": len(ngrok.log())})
            else:
                return
    finally:
        slack.stop()
        ngrok.stop()


class StandIns:
    """The parent's handle on `serve_stand_ins`, started with spawn (no threads inherited)."""

    def __init__(self, sessions: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=serve_stand_ins, args=(child, sessions), name="stand-ins", daemon=True
        )
        self._process.start()
        child.close()
        urls: dict[str, str] = self._conn.recv()
        self.ngrok_url, self.slack_url, self.bot_token = urls["ngrok"], urls["slack"], urls["token"]

    def response_urls(self, count: int) -> list[str]:
        """Fresh response_urls of the Slack stand-in, asked for before any timing starts."""
        self._conn.send(("response_urls", count))
        urls: list[str] = self._conn.recv()
        return urls

    def report(self) -> dict[str, int]:
        """Replies received on response_urls, how many were a session list, ngrok requests."""
        self._conn.send(("report", 0))
        counts: dict[str, int] = self._conn.recv()
        return counts

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # the child is gone already
            self._conn.send(("stop", 0))
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
        self._conn.close()


def bare_app(slack_url: str, token: str) -> App:
    client = WebClient(token=token, base_url=slack_url)
    app = App(client=client, signing_secret=SIGNING_SECRET, process_before_response=True)

    @app.command("/ngrok")
    def ack_only(ack: Ack) -> None:
        ack()

    return app


def cpu(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(process seconds, thread seconds, result) of fn()."""
    p0, t0 = time.process_time(), time.thread_time()
    value = fn()
    return time.process_time() - p0, time.thread_time() - t0, value


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.2f} ms ({statistics.mean(values) * 1000:.2f})"


def row(what: str, process: list[float], thread: list[float], base: tuple[float, float]) -> str:
    """One table row: process_time and thread_time, each with its ratio to bare Bolt's."""
    p_ratio = statistics.median(process) / base[0]
    t_ratio = statistics.median(thread) / base[1]
    return f"| {what} | {ms(process)} | {p_ratio:.2f}x | {ms(thread)} | {t_ratio:.2f}x |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--target-ms", type=float, default=5.0)
    parser.add_argument("--profile", action="store_true", help="profile even when met")
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    stand_ins = StandIns(args.sessions)
    deps = None
    with tempfile.TemporaryDirectory(prefix="render-cost-") as tmp:
        try:
            env = {
                "SLACK_BOT_TOKEN": stand_ins.bot_token,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": stand_ins.slack_url,
                "NGROK_API_KEY": NGROK_KEY,
                "NGROK_API_URL": stand_ins.ngrok_url,
                "STATE_PATH": str(Path(tmp) / "state.sqlite3"),
                "GROUP_CACHE_SECONDS": "0",
                "APPROVAL_SECRET": "bench-approval-secret-0123456789abcdef",
                "NGROK_RATE_LIMIT": "10000",
                "FLEET_CACHE_SECONDS": "600",  # warm for the whole run after the first listing
                "LOG_LEVEL": "WARNING",
            }
            settings = load_settings(env, config_text=None, config_source="(no BOT_CONFIG)")
            deps = build_deps(settings, private_queue=True, audit_stream=io.StringIO())
            app = create_app(deps, process_before_response=True)
            bare = bare_app(stand_ins.slack_url, stand_ins.bot_token)
            sender = SlackSender("in-process", secret=SIGNING_SECRET)
            sender.http.close()

            submitted: list[dict[str, Any]] = []
            original_submit = deps.jobs.submit

            def capture(name: str, payload: dict[str, Any]) -> None:
                original_submit(name, payload)  # the real enqueue stays on the ack path
                if name == JOB_COMMAND:
                    submitted.append(json.loads(json.dumps(payload)))

            deps.jobs.submit = capture  # type: ignore[method-assign]
            turns = args.warmup + args.runs
            urls = iter(stand_ins.response_urls(2 * turns + args.runs))

            def request() -> BoltRequest:
                body = sender.command_body(
                    "sessions", user=USER, channel=CHANNEL, response_url=next(urls)
                )
                headers = sender.headers(body, "application/x-www-form-urlencoded")
                return BoltRequest(body=body, headers=headers)

            bare_p: list[float] = []
            bare_t: list[float] = []
            ack_p: list[float] = []
            ack_t: list[float] = []
            job_p: list[float] = []
            job_t: list[float] = []
            for turn in range(turns):
                req_bare, req_bot = request(), request()
                bp, bt, resp_bare = cpu(partial(bare.dispatch, req_bare))
                ap, at, resp_bot = cpu(partial(app.dispatch, req_bot))
                assert resp_bare.status == 200 and resp_bot.status == 200, (resp_bare, resp_bot)
                payload = submitted.pop()
                jp, jt, _ = cpu(partial(deps.jobs.run_now, JOB_COMMAND, payload))
                deps.jobs.huey.flush()  # the consumer is not running; drop the queued copy
                if turn >= args.warmup:
                    bare_p.append(bp)
                    bare_t.append(bt)
                    ack_p.append(ap)
                    ack_t.append(at)
                    job_p.append(jp)
                    job_t.append(jt)
            seen = stand_ins.report()

            load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
            print(f"{args.sessions}-session fleet, {args.runs} timed runs after {args.warmup} "
                  f"untimed; replies that were a session list: {seen['lists']} of {turns}; "
                  f"ngrok requests in all: {seen['ngrok']}; load average {load}")  # fmt: skip
            base = (statistics.median(bare_p), statistics.median(bare_t))
            print("\n| what | process_time, median (mean) | ratio to bare Bolt ack "
                  "| thread_time, median (mean) | ratio |")  # fmt: skip
            print("|---|---|---|---|---|")
            print(row("bare Bolt ack (dispatch)", bare_p, bare_t, base))
            print(row("bot ack path (dispatch: verify, parse, ack, enqueue)", ack_p, ack_t, base))
            print(row("bot job (consumer: list, render, reply)", job_p, job_t, base))
            job = statistics.median(job_p) * 1000
            met = job <= args.target_ms
            print(
                f"\ntarget: job <= {args.target_ms:g} ms process_time per /ngrok sessions: "
                f"{'met' if met else 'NOT met'} ({job:.2f} ms median)"
            )
            if args.profile or not met:
                profile = cProfile.Profile(time.thread_time)
                for _ in range(args.runs):
                    app.dispatch(request())
                    payload = submitted.pop()
                    profile.enable()
                    deps.jobs.run_now(JOB_COMMAND, payload)
                    profile.disable()
                    deps.jobs.huey.flush()
                out = io.StringIO()
                stats = pstats.Stats(profile, stream=out).sort_stats("cumulative")
                stats.print_stats(args.top + 12)  # the run_now wrappers come first
                print(f"\ncProfile of {args.runs} jobs (thread_time), by cumulative time:")
                print(out.getvalue().strip())
            return 0
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        finally:
            if deps is not None:
                deps.close()
            stand_ins.stop()


if __name__ == "__main__":
    sys.exit(main())
