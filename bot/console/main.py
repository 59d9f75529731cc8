"""`python -m bot console [--demo] [--as U…] [--channel C…]`: wiring and the input loop.

The app is built exactly as for Slack (`build_deps` + `create_app`); only the two network
edges are replaced: Slack by the loopback client and response_url server, and, with
`--demo`, the ngrok API by an in-process simulated account.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from bot.app import create_app
from bot.console.loopback import LoopbackSlack, Outbox
from bot.console.repl import QUIT, Console, Where, wait_for_replies
from bot.demo.ngrok_api import DEMO_API_KEY, DEMO_BASE_URL, demo_api, demo_transport
from bot.deps import build_deps
from bot.logs import configure_logging
from bot.settings.console import DEMO_OPERATOR, load_console_settings
from bot.settings.env import SettingsError
from bot.state.consumers import start_heartbeat

BANNER = (
    "ngrok-ops console: type what you would type after /ngrok (help, sessions region=eu, "
    "session ts_…, restart ts_…, audit); a number clicks that choice; Enter shows what "
    "arrived since; quit or Ctrl-D ends."
)


class _Discard(io.StringIO):
    """A text stream that keeps nothing: the audit's JSON lines would bury the messages."""

    def write(self, text: str) -> int:
        return len(text)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The console's options; argparse exits with code 2 on a bad one."""
    parser = argparse.ArgumentParser(
        prog="python -m bot console",
        description="Try the bot in a terminal: the same commands, approvals and audit as "
        "in Slack, with the messages printed as text.",
    )
    parser.add_argument(
        "--demo", action="store_true", help="use a simulated ngrok account (no credentials)"
    )
    parser.add_argument(
        "--as", dest="user", default=DEMO_OPERATOR, metavar="U…", help="the acting Slack user"
    )
    parser.add_argument("--channel", default="C0CONSOLE", metavar="C…", help="the channel")
    return parser.parse_args(argv)


def read_lines(stdin: TextIO, stdout: TextIO, interactive: bool) -> Iterator[str]:
    """Lines from the terminal (with a prompt) or from a pipe (silently) until the end."""
    if not interactive:
        yield from (line.rstrip("\n") for line in stdin)
        return
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (arrow keys and history for input())
    while True:
        try:
            yield input("ngrok> ")
        except EOFError:
            print(file=stdout)
            return


def run_console(argv: list[str], stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    """Runs the console until the input ends; 0 unless the settings are wrong (2)."""
    args = parse_args(argv)
    outbox = Outbox()
    slack = LoopbackSlack(outbox)
    with tempfile.TemporaryDirectory(prefix="ngrok-ops-console-") as scratch:
        try:
            settings = load_console_settings(
                demo=args.demo,
                slack_api_url=slack.api_url,
                demo_api_key=DEMO_API_KEY,
                demo_api_url=DEMO_BASE_URL,
                state_path=str(Path(scratch) / "demo-state.sqlite3"),
            )
        except SettingsError as error:
            print(error.report(), file=sys.stderr)
            slack.close()
            return 2
        configure_logging(settings.log_level, settings.secret_values())
        deps = build_deps(
            settings,
            ngrok_transport=demo_transport(demo_api()) if args.demo else None,
            audit_stream=_Discard(),  # the store keeps the records; `audit` shows them
            private_queue=True,
        )
        stop_consumer = deps.jobs.start_threads(workers=4)
        # Its replies are recorded in the store, which may be a deployment's: say we live.
        stop_beating = start_heartbeat(deps.store, deps.clock)
        try:
            app = create_app(deps, token_verification=False, process_before_response=True)
            console = Console(app, deps, outbox, slack, Where(args.user, args.channel), stdout)
            interactive = stdin.isatty() and stdout.isatty()
            if interactive:
                print(BANNER, file=stdout)
            for line in read_lines(stdin, stdout, interactive):
                if line.strip().lower() in QUIT:
                    break
                console.handle_line(line, echo=not interactive)
            wait_for_replies(deps)
            console.show(outbox.take_all())
        finally:
            stop_beating()
            stop_consumer()
            deps.close()
            slack.close()
    return 0
