"""`python -m bot` runs the bot; `python -m bot check` says whether it is ready to run;
`python -m bot console [--demo]` tries it in a terminal, without Slack.

With SLACK_APP_TOKEN set the bot connects over Socket Mode; otherwise it serves HTTP on
$PORT through gunicorn (the same server as the Procfile's `web:`), never Bolt's
development server.
"""

from __future__ import annotations

import os
import signal
import sys

from bot.settings.env import SettingsError, load_settings_from_environment

USAGE = "usage: python -m bot [check | jobs | console [--demo] [--as U…] [--channel C…]]"
HELP = f"""{USAGE}

  python -m bot                  run the bot for a Slack workspace (settings: README.md)
  python -m bot check            check the settings, Slack, ngrok, the store and the queue
  python -m bot jobs             run a job consumer (the web process starts one itself)
  python -m bot console --demo   try the bot in a terminal with a simulated ngrok account
  python -m bot console          the same against the configured ngrok account (no Slack)"""


def run_socket_mode() -> None:
    """Connects to Slack over a WebSocket and serves until interrupted."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.app import create_app
    from bot.deps import build_deps
    from bot.logs import configure_logging
    from bot.supervisor import ConsumerSupervisor

    settings = load_settings_from_environment()
    configure_logging(settings.log_level, settings.secret_values())
    deps = build_deps(settings)
    app = create_app(deps)
    handler = SocketModeHandler(app, settings.slack_app_token)
    consumer = ConsumerSupervisor() if settings.jobs_consumer == "embedded" else None
    if consumer is not None:
        consumer.start()

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)  # unwinds into `finally`, which stops the consumer gracefully

    signal.signal(signal.SIGTERM, stop)
    try:
        handler.start()
    finally:
        handler.close()
        if consumer is not None:
            consumer.stop()
        deps.close()


def run_http() -> None:
    """Replaces this process with gunicorn configured by bot.gunicorn_conf."""
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:bot.gunicorn_conf",
        "bot.wsgi:load_app()",
    ]
    os.execv(sys.executable, argv)


def main(argv: list[str]) -> int:
    """Entry point; returns the exit code (2 for bad settings or usage)."""
    if argv and argv[0] in ("-h", "--help", "help"):
        print(HELP)
        return 0
    if argv and argv[0] == "console":
        from bot.console.main import run_console

        return run_console(argv[1:])
    if argv and argv[0] not in ("check", "jobs"):
        print(f"Unknown command {argv[0]!r}. {USAGE}", file=sys.stderr)
        return 2
    if len(argv) > 1:  # `check --verbose` must not silently run a plain check
        print(f"Unexpected argument {argv[1]!r}. {USAGE}", file=sys.stderr)
        return 2
    if argv and argv[0] == "check":
        from bot.doctor import run_checks

        return run_checks()
    try:
        settings = load_settings_from_environment()
    except SettingsError as error:
        print(error.report(), file=sys.stderr)
        return 2
    if argv:  # jobs
        from bot.consumer import run_consumer

        run_consumer()
        return 0
    if settings.mode == "socket":
        run_socket_mode()
    else:
        run_http()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
