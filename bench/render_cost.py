"""CPU time per `/ngrok sessions` on a 200-session fleet, measured in process.

The bot's two halves, timed with time.process_time (and time.thread_time, see below):

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
and Slack APIs (tests/servers) run in threads of this process, so process_time also counts
the Slack stand-in receiving the reply; thread_time counts only the calling thread, which is
where the job runs. When the job's CPU misses the target it prints a cProfile of `--runs`
more jobs (top functions by cumulative time).

    python bench/render_cost.py [--runs 50] [--warmup 5] [--sessions 200] [--target-ms 5]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
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


def bare_app(slack: SlackApiServer) -> App:
    client = WebClient(token=slack.bot_token, base_url=slack.base_url)
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
    return f"{statistics.median(values) * 1000:.2f} ms (mean {statistics.mean(values) * 1000:.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--target-ms", type=float, default=5.0)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    ngrok = NgrokApiServer(api_key=NGROK_KEY, sessions=args.sessions, rate_limit=None)
    slack = SlackApiServer()
    deps = None
    with tempfile.TemporaryDirectory(prefix="render-cost-") as tmp:
        try:
            ngrok.start()
            slack.start()
            env = {
                "SLACK_BOT_TOKEN": slack.bot_token,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": slack.base_url,
                "NGROK_API_KEY": NGROK_KEY,
                "NGROK_API_URL": ngrok.base_url,
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
            bare = bare_app(slack)
            sender = SlackSender("in-process", secret=SIGNING_SECRET)
            sender.http.close()

            submitted: list[dict[str, Any]] = []
            original_submit = deps.jobs.submit

            def capture(name: str, payload: dict[str, Any]) -> None:
                original_submit(name, payload)  # the real enqueue stays on the ack path
                if name == JOB_COMMAND:
                    submitted.append(json.loads(json.dumps(payload)))

            deps.jobs.submit = capture  # type: ignore[method-assign]

            def request() -> BoltRequest:
                url = slack.response_url()
                body = sender.command_body("sessions", user=USER, channel=CHANNEL, response_url=url)
                headers = sender.headers(body, "application/x-www-form-urlencoded")
                return BoltRequest(body=body, headers=headers)

            acks, jobs_p, jobs_t, bare_acks = [], [], [], []
            replies_before = len(slack.calls_to("response_url"))
            for turn in range(args.warmup + args.runs):
                req_bare, req_bot = request(), request()
                b, _, resp_bare = cpu(lambda r=req_bare: bare.dispatch(r))
                a, _, resp_bot = cpu(lambda r=req_bot: app.dispatch(r))
                assert resp_bare.status == 200 and resp_bot.status == 200, (resp_bare, resp_bot)
                payload = submitted.pop()
                jp, jt, _ = cpu(lambda p=payload: deps.jobs.run_now(JOB_COMMAND, p))
                deps.jobs.huey.flush()  # the consumer is not running; drop the queued copy
                if turn >= args.warmup:
                    bare_acks.append(b)
                    acks.append(a)
                    jobs_p.append(jp)
                    jobs_t.append(jt)
            replies = slack.calls_to("response_url")[replies_before:]
            lists = sum(1 for c in replies if LIST_REPLY in str(c.body.get("text", "")))
            served = len(ngrok.log())

            print(f"{args.sessions}-session fleet, {args.runs} timed runs after {args.warmup} "
                  f"untimed; replies that were a session list: {lists} of "
                  f"{args.warmup + args.runs}; ngrok requests in all: {served}")  # fmt: skip
            base = statistics.median(bare_acks)
            job = statistics.median(jobs_p)
            print("\n| what | CPU per command, median (mean) | ratio to bare Bolt ack |")
            print("|---|---|---|")
            print(f"| bare Bolt ack (dispatch) | {ms(bare_acks)} | 1.00x |")
            print(f"| bot ack path (dispatch: verify, parse, ack, enqueue) | {ms(acks)} "
                  f"| {statistics.median(acks) / base:.2f}x |")  # fmt: skip
            print(f"| bot job (consumer: list, render, reply), process_time | {ms(jobs_p)} "
                  f"| {job / base:.2f}x |")  # fmt: skip
            print(f"| bot job, thread_time (without the stand-ins' threads) | {ms(jobs_t)} "
                  f"| {statistics.median(jobs_t) / base:.2f}x |")  # fmt: skip
            met = job * 1000 <= args.target_ms
            verdict = "met" if met else "NOT met"
            print(
                f"\ntarget: job <= {args.target_ms:g} ms per /ngrok sessions: {verdict} "
                f"({job * 1000:.2f} ms median process_time)"
            )
            if not met:
                profile = cProfile.Profile()
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
                print(f"\ncProfile of {args.runs} jobs, by cumulative time:")
                print(out.getvalue().strip())
            return 0
        finally:
            if deps is not None:
                deps.close()
            slack.stop()
            ngrok.stop()


if __name__ == "__main__":
    sys.exit(main())
