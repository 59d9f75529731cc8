"""How long the bot takes to ack `/ngrok sessions`, against a bare Bolt app served the same way.

Slack wants the HTTP 200 for a slash command within 3 s. The web process only verifies,
parses, acks and enqueues a job; the job consumer it starts (`python -m bot jobs`) lists the
fleet and replies on the response_url. This starts a local ngrok API (200 sessions, no server
rate limit, 1 s per request), a local Slack API, the bot twice from the Procfile's `web:`
command (fleet cache warm: FLEET_CACHE_SECONDS=600 after a first listing; cold: 0) and a bare
Bolt app (bench/bare_bolt_app.py) with the same gunicorn config, twice: the second bare Bolt
is measured like the bot, and its ratio to the first (A/A) is the noise of this run. Then
measures:

- bursts of `--concurrency` (20 and 50) signed `/ngrok sessions`, each on a fresh connection,
  released together, `--rounds` rounds (each waits for the previous round's replies), the
  servers taking turns round by round;
- a throughput ceiling: open-loop rates in coarse steps, the highest with ack p99 under 3 s
  and every ack an HTTP 200.

The load comes from a separate process (asyncio, raw HTTP/1.1, `Connection: close`), so the
stand-ins' threads in this process do not share a GIL with the client, and the stand-ins run
at nice 10 (`lower_stand_ins_priority`), below the client: in production Slack and ngrok are
other machines.

    python bench/ack_latency.py [--concurrency 20 50] [--latency 1.0] [--rounds 10]

Exits 1 when any burst ack took over 3 s, was not an HTTP 200, or a reply never arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bot_process import SIGNING_SECRET, BotProcess, SlackSender, procfile_command
from tests.servers.ngrok_api import NgrokApiServer
from tests.servers.slack_api import SlackApiServer

STAND_IN_NICENESS = 10  # see lower_stand_ins_priority
ACK_DEADLINE = 3.0  # Slack shows the user an error when the 200 takes longer
NGROK_KEY = "2AbCdEfGhIjKlMnOpQrStUvWxYz_benchNgrokKey0123456789"
USER, CHANNEL = "U0BENCH", "C0BENCH"
REPLY_TIMEOUT = 120.0  # a burst's or a step's replies; only a stuck consumer waits this long
STEP_DRAIN_TIMEOUT = 60.0  # replies of a rate step before the next step starts
REQUEST_TIMEOUT = 10.0  # one HTTP round trip in the load process
LIST_REPLY = "ngrok agents online"  # the fallback text of a session list
RATES = (25, 50, 100, 150, 200, 300, 400)  # commands per second, open loop
STEP_SECONDS = 3.0
# Round by round in this order; "bare again" is a second bare Bolt server, so the spread of
# bare against bare (A/A) shows how much of a ratio this shared machine's noise can make.
MODES = ("bare", "warm", "cold", "bare again")
BARE_COMMAND = "gunicorn --config python:bot.gunicorn_conf 'bench.bare_bolt_app:load_app()'"


# -- the load process ----------------------------------------------------------------------------


async def _one(port: int, raw: bytes, at: float) -> tuple[float, int]:
    """(seconds from the scheduled send to the end of the answer, HTTP status or 0)."""
    delay = at - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), REQUEST_TIMEOUT
        )
        try:
            writer.write(raw)
            data = await asyncio.wait_for(reader.read(), REQUEST_TIMEOUT)  # to EOF
        finally:
            writer.close()
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    except (OSError, TimeoutError, ValueError, IndexError):
        status = 0
    return time.monotonic() - at, status


async def _fire(port: int, raws: list[bytes], offsets: list[float]) -> tuple[float, list]:
    start = time.monotonic() + 0.2
    tasks = [_one(port, raw, start + offset) for raw, offset in zip(raws, offsets, strict=True)]
    return start, await asyncio.gather(*tasks)


def fire(port: int, raws: list[bytes], offsets: list[float]) -> tuple[float, list]:
    """Runs in the load process: sends `raws[i]` at `offsets[i]` seconds after the start
    (open loop); returns the start (time.monotonic, the same clock system-wide) and the
    (ack seconds, status) of each."""
    return asyncio.run(_fire(port, raws, offsets))


# -- requests and results ------------------------------------------------------------------------


@dataclass
class Result:
    target: str
    name: str
    acks: list[float] = field(default_factory=list)
    failed: int = 0
    replies: list[float] = field(default_factory=list)
    missing: int = 0
    last_reply: float = math.nan  # from the first send to the last reply
    sent_rate: float = math.nan  # open loop: commands per second asked for

    @property
    def slow(self) -> int:
        return sum(1 for ack in self.acks if ack > ACK_DEADLINE) + self.failed

    def p(self, pct: float) -> float:
        return percentile(self.acks, pct)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (with 60 samples p99 is the maximum)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(math.ceil(pct / 100 * len(ordered)) - 1, 0)]


class Target:
    """One server under test (the bot or bare Bolt) and how to build its requests."""

    def __init__(self, name: str, process: BotProcess, *, replies: bool) -> None:
        self.name, self.process, self.replies = name, process, replies
        self.sender = SlackSender(process.events_url, secret=SIGNING_SECRET)
        self.sender.http.close()  # only its payloads and signatures are used

    def build(self, slack: SlackApiServer, count: int) -> tuple[list[bytes], list[str]]:
        raws, keys = [], []
        for _ in range(count):
            url = slack.response_url()
            body = self.sender.command_body(
                "sessions", user=USER, channel=CHANNEL, response_url=url
            )
            headers = self.sender.headers(body, "application/x-www-form-urlencoded")
            lines = [
                "POST /slack/events HTTP/1.1",
                f"Host: 127.0.0.1:{self.process.port}",
                "Connection: close",
                f"Content-Length: {len(body.encode())}",
                *(f"{k}: {v}" for k, v in headers.items()),
            ]
            raws.append(("\r\n".join(lines) + "\r\n\r\n" + body).encode())
            keys.append(url.rsplit("/", 1)[1])
        return raws, keys


def collect_replies(
    slack: SlackApiServer, keys: list[str], sent: dict[str, float], result: Result, timeout: float
) -> None:
    """Waits (bounded) for one response_url post per key and records the reply times."""
    wanted = set(keys)
    deadline = time.monotonic() + timeout
    found: dict[str, float] = {}
    while True:
        for call in slack.calls_to("response_url"):
            if call.key in wanted and call.key not in found:
                text = str(call.body.get("text", ""))
                found[call.key] = call.at if call.status == 200 and LIST_REPLY in text else -1.0
        if len(found) == len(wanted) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    good = {k: at for k, at in found.items() if at >= 0}
    result.missing += len(wanted) - len(good)
    result.replies.extend(at - sent[k] for k, at in good.items())
    if good:
        last = max(good.values()) - min(sent[k] for k in keys)
        result.last_reply = last if math.isnan(result.last_reply) else max(result.last_reply, last)
    slack.clear()  # keeps the list the next wait scans short


def run_bursts(
    target: Target,
    slack: SlackApiServer,
    load: ProcessPoolExecutor,
    result: Result,
    concurrency: int,
) -> None:
    """One round: `concurrency` commands released together, then (for the bot) their replies;
    the samples are added to `result`."""
    raws, keys = target.build(slack, concurrency)
    start, samples = load.submit(fire, target.process.port, raws, [0.0] * concurrency).result()
    for ack, status in samples:
        if status == 200:
            result.acks.append(ack)
        else:
            result.failed += 1
    if target.replies:
        sent = dict.fromkeys(keys, start)
        collect_replies(slack, keys, sent, result, REPLY_TIMEOUT)


def run_ceiling(
    target: Target, slack: SlackApiServer, load: ProcessPoolExecutor
) -> tuple[int, list[Result]]:
    """Open-loop steps; stops at the first that misses (p99 >= 3 s or any non-200)."""
    best, steps = 0, []
    for rate in RATES:
        count = int(rate * STEP_SECONDS)
        raws, keys = target.build(slack, count)
        offsets = [i / rate for i in range(count)]
        start, samples = load.submit(fire, target.process.port, raws, offsets).result()
        step = Result(target.name, f"{rate}/s", sent_rate=rate)
        for ack, status in samples:
            if status == 200:
                step.acks.append(ack)
            else:
                step.failed += 1
        if target.replies:  # drain before the next step, so steps do not overlap
            sent = {k: start + o for k, o in zip(keys, offsets, strict=True)}
            collect_replies(slack, keys, sent, step, STEP_DRAIN_TIMEOUT)
        steps.append(step)
        if step.failed or not step.p(99) < ACK_DEADLINE:
            break
        best = rate
    return best, steps


# -- processes -----------------------------------------------------------------------------------


def base_env(ngrok: NgrokApiServer, slack: SlackApiServer, state_dir: Path) -> dict[str, str]:
    """As in tests/e2e_fixtures.py, without BOT_CONFIG: everyone may list sessions."""
    state_dir.mkdir()
    return {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.base_url,
        "NGROK_API_KEY": NGROK_KEY,
        "NGROK_API_URL": ngrok.base_url,
        "STATE_PATH": str(state_dir / "state.sqlite3"),
        "GROUP_CACHE_SECONDS": "0",
        "APPROVAL_SECRET": "bench-approval-secret-0123456789abcdef",
        "LOG_LEVEL": "WARNING",
    }


def lower_stand_ins_priority() -> None:
    """The stand-ins' threads (all but this one; the threads they start inherit it) at nice
    STAND_IN_NICENESS. They play Slack and ngrok, which run on other machines. Linux weighs
    nice values only within one scheduling autogroup (a session, where autogroups are on):
    the servers run in sessions of their own (BotProcess), so this orders the stand-ins
    below the load process, which shares this session and times the acks, not below the
    servers. At the same priority, the Slack stand-in taking the warm bot's replies during a
    burst delayed the load process's reads (warm, 20 concurrent: p99 1.95x and 2.01x bare
    Bolt in two runs; at nice 10, 1.25x to 2.09x in four, median 1.36x), a cost bare Bolt,
    sending no replies, never meets."""
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and thread.native_id is not None:
            os.setpriority(os.PRIO_PROCESS, thread.native_id, STAND_IN_NICENESS)


def start_server(env: dict[str, str], command: str) -> BotProcess:
    """`command` with --bind 127.0.0.1 (the config binds 0.0.0.0; the command line wins)."""
    process = BotProcess(env)
    process.command = command.replace(
        "gunicorn --config python:bot.gunicorn_conf",
        f"gunicorn --config python:bot.gunicorn_conf --bind 127.0.0.1:{process.port}",
    )
    return process.start()


def stop_server(process: BotProcess) -> None:
    try:
        process.stop()
    finally:
        for path in (process._out_path, process._err_path):
            path.unlink(missing_ok=True)
        process._out_path.parent.rmdir()  # BotProcess's own temporary folder, now empty


# -- output --------------------------------------------------------------------------------------


def fmt(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def print_bursts(results: dict[tuple[str, int], Result], scenarios: list[tuple[str, int]]) -> None:
    print(
        "\n| scenario | acks | ack p50 | ack p99 | bare Bolt p99 | p99 / bare | over 3 s or "
        "failed | reply p50 | reply p99 | last reply | missing replies |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for mode, conc in scenarios:
        bot, bare = results[(mode, conc)], results[("bare", conc)]
        ratio = bot.p(99) / bare.p(99) if bare.p(99) > 0 else math.nan
        mark = "" if ratio <= 1.3 else " **"
        print(
            f"| bot, fleet cache {mode}, {conc} concurrent | {len(bot.acks)} | {fmt(bot.p(50))} "
            f"| {fmt(bot.p(99))} | {fmt(bare.p(99))} | {ratio:.2f}x{mark} | {bot.slow} "
            f"| {fmt(percentile(bot.replies, 50))} | {fmt(percentile(bot.replies, 99))} "
            f"| {fmt(bot.last_reply)} | {bot.missing} |"
        )
    for conc in sorted({c for _, c in scenarios}):
        bare, again = results[("bare", conc)], results[("bare again", conc)]
        print(f"| bare Bolt, {conc} concurrent | {len(bare.acks)} | {fmt(bare.p(50))} "
              f"| {fmt(bare.p(99))} | | | {bare.slow} | | | | |")  # fmt: skip
        ratio = again.p(99) / bare.p(99) if bare.p(99) > 0 else math.nan
        print(f"| bare Bolt again (A/A: the noise), {conc} concurrent | {len(again.acks)} "
              f"| {fmt(again.p(50))} | {fmt(again.p(99))} | {fmt(bare.p(99))} | {ratio:.2f}x "
              f"| {again.slow} | | | | |")  # fmt: skip


def print_ceilings(ceilings: dict[str, tuple[int, list[Result]]]) -> None:
    bare_best = ceilings["bare"][0]
    print("\nsteps (open loop, 3 s each; ack from the scheduled send):")
    for name, (_, steps) in ceilings.items():
        for step in steps:
            tail = ""
            if not math.isnan(step.last_reply) or step.missing:
                tail = f", last reply {fmt(step.last_reply)}, missing {step.missing}"
            print(
                f"  {name:10} {step.name:>6}: p50 {fmt(step.p(50))}, p99 {fmt(step.p(99))}, "
                f"failed {step.failed}{tail}"
            )
    print("\n| server | ceiling (p99 < 3 s) | ratio to bare Bolt |")
    print("|---|---|---|")
    for name, (best, _) in ceilings.items():
        ratio = f"{best / bare_best:.2f}x" if bare_best else "n/a"
        top = " (the highest step tried)" if best == RATES[-1] else ""
        print(f"| {name} | {best}/s{top} | {ratio if name != 'bare' else ''} |")


def on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--latency", type=float, default=1.0, help="ngrok seconds per request")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--skip-ceiling", action="store_true")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started ignoring it

    began = time.monotonic()
    ngrok = NgrokApiServer(api_key=NGROK_KEY, sessions=200, rate_limit=None)
    slack = SlackApiServer()
    processes: list[BotProcess] = []
    load = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    with tempfile.TemporaryDirectory(prefix="ack-bench-") as tmp:
        try:
            ngrok.start()
            slack.start()
            lower_stand_ins_priority()
            bot_extra = {"NGROK_RATE_LIMIT": "10000"}  # measure the bot, not the budget
            targets: dict[str, Target] = {}
            for name, fleet_cache in (("warm", "600"), ("cold", "0")):
                env = base_env(ngrok, slack, Path(tmp) / name)
                env.update(bot_extra, FLEET_CACHE_SECONDS=fleet_cache)
                processes.append(start_server(env, procfile_command("web")))
                targets[name] = Target(f"bot {name}", processes[-1], replies=True)
            for name in ("bare", "bare again"):  # the second measures the noise (A/A)
                bare_env = base_env(ngrok, slack, Path(tmp) / name.replace(" ", "-"))
                bare_env["JOBS_CONSUMER"] = "separate"  # no consumer beside bare Bolt
                processes.append(start_server(bare_env, BARE_COMMAND))
                targets[name] = Target("bare Bolt", processes[-1], replies=False)
            print(f"bot: {targets['warm'].process.command}")
            print(f"bare Bolt: {targets['bare'].process.command}")
            print(f"ngrok API stand-in: 200 sessions (2 pages), {args.latency:g} s per request")

            # Warm-up: every server starts its threads, the warm bot fills its fleet cache.
            ngrok.latency = 0
            for target in targets.values():
                run_bursts(target, slack, load, Result(target.name, "warm-up"), 50)
            ngrok.latency = args.latency

            results: dict[tuple[str, int], Result] = {}
            scenarios = [(mode, conc) for conc in args.concurrency for mode in ("warm", "cold")]
            for conc in args.concurrency:
                # Round by round in turn, so a noisy minute on this shared machine falls on
                # the baseline and the bot alike rather than on one scenario's rounds.
                for mode in MODES:
                    results[(mode, conc)] = Result(targets[mode].name, f"{mode} {conc}")
                for _ in range(args.rounds):
                    for mode in MODES:
                        run_bursts(targets[mode], slack, load, results[(mode, conc)], conc)
                print(f"bursts of {conc} done at {time.monotonic() - began:.0f} s", flush=True)
            print_bursts(results, scenarios)

            ceilings: dict[str, tuple[int, list[Result]]] = {}
            if not args.skip_ceiling:
                for mode in ("bare", "warm", "cold"):
                    ceilings[mode] = run_ceiling(targets[mode], slack, load)
                    print(f"ceiling {mode} done at {time.monotonic() - began:.0f} s", flush=True)
                print_ceilings(ceilings)

            problems = sum(r.slow + r.missing for r in results.values())
            print(f"\n{'FAIL' if problems else 'OK'}: {problems} burst ack(s) over ", end="")
            print(f"{ACK_DEADLINE:g} s, failed, or without a reply; ", end="")
            print(f"took {time.monotonic() - began:.0f} s")
            if problems:
                for process in processes:
                    print(f"stderr of {process.command} (last 20 lines):")
                    print(*process.stderr().splitlines()[-20:], sep="\n")
            return 1 if problems else 0
        except KeyboardInterrupt:
            print("\ninterrupted; cleaning up", file=sys.stderr)
            return 130
        finally:
            ngrok.latency = 0  # consumers finish queued jobs on SIGINT; let them run fast
            for process in processes:
                stop_server(process)
            load.shutdown(cancel_futures=True)
            slack.stop()
            ngrok.stop()


if __name__ == "__main__":
    sys.exit(main())
