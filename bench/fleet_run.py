"""Fleet run benchmark (issue 11): how close does a rolling update+restart of every outdated
agent come to the floor the shared ngrok budget sets, with 0 responses 429, 0 duplicate
POSTs and 0 agents left unfinished, also when the job consumer is SIGKILLed mid-run?

    python bench/fleet_run.py [--sessions 500] [--rate 120] [--window 6] [--batch 0]
                              [--restart-delay 1.0] [--skip-kill] [--show-messages]

Starts the local ngrok API (tests/servers/ngrok_api.py) with `--sessions` agents and its rate
limiter on (`--rate` per `--window` s: the real 120 per 60 s scaled down so the run takes a
minute or two), the local Slack API, and the bot from the Procfile's `web:` (which starts the
job consumer) with the same budget. Then `update all` is previewed and approved, and the
script waits for the progress message's final edit.

floor = (POSTs + the reads the run must make) / rate, where the reads are one successor look
per 40 agents of a batch (commands/fleet_plan.requests_needed); the planning scan is not
counted. Reported against both the account's rate and the run's rate (without the tenth kept
for urgent calls, which a run never uses).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.bot_process import SIGNING_SECRET, BotProcess, SlackSender, find_button
from tests.e2e_fixtures import DEFAULT_CONFIG, NGROK_KEY, Stack, wait_until
from tests.servers.ngrok_api import NgrokApiServer
from tests.servers.slack_api import SlackApiServer

UPDATE_DELAY = 0.3


def run_once(args: argparse.Namespace, *, kill: bool) -> dict[str, float]:
    ngrok = NgrokApiServer(
        sessions=args.sessions, rate_limit=args.rate, rate_window=args.window,
        restart_delay=args.restart_delay, api_key=NGROK_KEY,
    ).start()  # fmt: skip
    slack = SlackApiServer().start()
    state = tempfile.mkdtemp(prefix="fleet-bench-")
    (Path(state) / "config.yml").write_text(DEFAULT_CONFIG)
    env = {
        "SLACK_BOT_TOKEN": slack.bot_token, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.base_url, "NGROK_API_KEY": NGROK_KEY,
        "NGROK_API_URL": ngrok.base_url, "STATE_PATH": str(Path(state) / "state.sqlite3"),
        "BOT_CONFIG": str(Path(state) / "config.yml"), "GROUP_CACHE_SECONDS": "0",
        "APPROVAL_SECRET": "bench-approval-secret-0123456789abcdef",
        "NGROK_RATE_LIMIT": str(args.rate), "NGROK_RATE_WINDOW": str(args.window),
        "UPDATE_RESTART_DELAY": str(UPDATE_DELAY), "ACTION_RECOVERY_SECONDS": "5",
        "LOG_LEVEL": "WARNING",
    }  # fmt: skip
    bot = BotProcess(env, log_dir=Path(state)).start()
    stack = Stack(ngrok, slack, bot, SlackSender(bot.events_url))
    try:
        batch = f" batch={args.batch}" if args.batch else ""
        preview = stack.ask(f"update all max_failures=20{batch}", user="U0ALICE")
        text = json.dumps(preview)
        count = int(text.split("*Update ")[1].split(" ")[0])
        ngrok.clear_log()
        started = time.monotonic()
        stack.click(find_button(preview, "ngrok_run_approve"))
        killed = 0
        if kill:
            wait_until(lambda: len(stack.action_posts()) >= count, timeout=600, what="half")
            parent = psutil.Process(bot.process.pid if bot.process else 0)
            for child in parent.children(recursive=True):
                if " jobs" in " ".join(child.cmdline()):
                    os.kill(child.pid, signal.SIGKILL)
                    killed += 1

        def final() -> list:
            return [
                c for c in slack.calls_to("chat.update")
                if any(f'"run_{s}"' in json.dumps(c.body) for s in ("done", "stopped"))
            ]  # fmt: skip

        wait_until(final, timeout=1800, what="the run's final edit")
        elapsed = time.monotonic() - started
        if args.show_messages and not kill:
            show_messages(preview, slack)
        body = json.dumps(final()[-1].body)
        log = ngrok.log()
        posts = Counter(r.path for r in log if r.method == "POST")
        reads = sum(1 for r in log if r.method == "GET")
        batches = -(-(count - 1) // (args.batch or min(50, max(1, -(-(count - 1) // 10))))) + 1
        needed = 2 * count + batches  # one look per batch at these batch sizes (<= 40 IPs)
        rate = args.rate / args.window
        run_rate = (args.rate - args.rate // 10) / args.window
        outdated = [
            s for s in ngrok.session_ids()
            if (ngrok.session(s) or {}).get("transport") != "ssh"
            and (ngrok.session(s) or {}).get("os") != "windows"
            and (ngrok.session(s) or {}).get("agent_version") != "3.26.1"
        ]  # fmt: skip
        return {
            "targets": count, "seconds": elapsed, "floor": needed / rate,
            "floor_run_rate": needed / run_rate, "posts": sum(posts.values()), "reads": reads,
            "429": sum(1 for r in log if r.status == 429),
            "duplicates": sum(n - 1 for n in posts.values() if n > 1),
            "unfinished": len(outdated), "killed": killed,
            "failed": int(body.split("*Failed* ")[1].split(" ")[0]),
        }  # fmt: skip
    finally:
        bot.stop()
        slack.stop()
        ngrok.stop()


def rendered(body: dict) -> str:
    """A message as a person reads it: each block's text, fields, context and controls."""
    lines = []
    for block in body.get("blocks") or []:
        kind = block.get("type")
        if kind in ("section", "header") and block.get("text"):
            lines.append(block["text"]["text"])
        for field in block.get("fields") or []:
            lines.append(field["text"])
        if kind == "context":
            lines.append(" ".join(e.get("text", "") for e in block.get("elements") or []))
        if kind == "actions":
            controls = []
            for element in block.get("elements") or []:
                shown = element.get("initial_option") or element
                label = (shown.get("text") or element.get("placeholder") or {}).get("text", "")
                controls.append(f"[{label}]")
            lines.append(" ".join(controls))
        if kind == "divider":
            lines.append("---")
    return "\n".join(lines) or str(body.get("text", ""))


def show_messages(preview: dict, slack: SlackApiServer) -> None:
    """Prints the preview, the first progress edit that shows a batch running and the final
    edit, as the running bot posted them (for the closing note)."""
    edits = [c.body for c in slack.calls_to("chat.update") if '"run_' in json.dumps(c.body)]
    running = [b for b in edits if '"run_running"' in json.dumps(b)]
    for title, body in (
        ("preview (ephemeral, to the requester)", preview),
        ("progress, mid-run edit", running[len(running) // 2] if running else {}),
        ("progress, final edit", edits[-1] if edits else {}),
    ):
        print(f"\n----- {title} -----\n{rendered(body)}\n", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--rate", type=int, default=120)
    parser.add_argument("--window", type=float, default=6.0)
    parser.add_argument("--batch", type=int, default=0)
    parser.add_argument("--restart-delay", type=float, default=1.0)
    parser.add_argument("--skip-kill", action="store_true")
    parser.add_argument(
        "--show-messages", action="store_true", help="print the preview and progress messages"
    )
    args = parser.parse_args()
    head = f"{'scenario':<14}{'targets':>8}{'time s':>9}{'floor s':>9}{'ratio':>7}"
    head += f"{'ratio(run)':>11}{'POSTs':>7}{'GETs':>6}{'429':>5}{'dup':>5}{'left':>5}"
    print(head + f"{'failed':>7}")
    for name, kill in (("clean", False), ("SIGKILL", True)):
        if kill and args.skip_kill:
            continue
        r = run_once(args, kill=kill)
        print(
            f"{name:<14}{r['targets']:>8.0f}{r['seconds']:>9.1f}{r['floor']:>9.1f}"
            f"{r['seconds'] / r['floor']:>7.2f}{r['seconds'] / r['floor_run_rate']:>11.2f}"
            f"{r['posts']:>7.0f}{r['reads']:>6.0f}{r['429']:>5.0f}{r['duplicates']:>5.0f}"
            f"{r['unfinished']:>5.0f}{r['failed']:>7.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
