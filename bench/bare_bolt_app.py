"""The baseline of bench/ack_latency.py: a bare `slack_bolt.App` served exactly as the bot is.

One `/ngrok` handler that only acks, behind Bolt's own WSGI adapter, wrapped by the bot's
serving layer (`bot.serving.buffered_wsgi` with `bot.wsgi.BOLT_THREADS` threads) and started
by gunicorn with the bot's config module, so worker class, body reading and thread pool are
the bot's:

    gunicorn --config python:bot.gunicorn_conf 'bench.bare_bolt_app:load_app()'

bot/gunicorn_conf.py checks the bot's settings in the master, so the benchmark gives this
process the bot's environment, with JOBS_CONSUMER=separate so that no job consumer is
started beside it (a bare Bolt app has no jobs). GET /healthz answers as the bot's does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

from bot.serving import AsgiApp, buffered_wsgi
from bot.wsgi import BOLT_THREADS


def create_bare_app() -> App:
    # Bolt checks the token with auth.test (at start and on the first request), so the
    # client points where the bot's does: SLACK_API_URL, the benchmark's local Slack API.
    client = WebClient(
        token=os.environ["SLACK_BOT_TOKEN"],
        base_url=os.environ.get("SLACK_API_URL") or WebClient.BASE_URL,
    )
    app = App(client=client, signing_secret=os.environ["SLACK_SIGNING_SECRET"])

    @app.command("/ngrok")
    def ack_only(ack: Ack) -> None:
        ack()

    return app


def load_app() -> AsgiApp:
    """gunicorn's app factory, as bot.wsgi.load_app is the bot's."""
    handler = SlackRequestHandler(create_bare_app())

    def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz" and environ.get("REQUEST_METHOD") == "GET":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        return handler(environ, start_response)

    return buffered_wsgi(wsgi_app, threads=BOLT_THREADS)
