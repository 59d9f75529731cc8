"""The app for gunicorn (HTTP mode): POST /slack/events for Slack, GET /healthz.

gunicorn calls `load_app()` in each worker (`'bot.wsgi:load_app()'`), so importing this
module builds nothing; bot/gunicorn_conf.py has already checked the settings in the master.
The app is Bolt's WSGI handler (behind bot/http_guard.py's body checks) served as ASGI by
bot/serving.py, which reads every request on the event loop before a thread runs Bolt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from bot.app import create_app
from bot.deps import build_deps
from bot.http_guard import GuardedRequestHandler
from bot.logs import configure_logging
from bot.serving import AsgiApp, buffered_wsgi
from bot.settings.env import Settings, load_settings_from_environment

BOLT_THREADS = 32  # acks are quick, but 50 simultaneous commands must not queue behind each other

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def create_wsgi_app(settings: Settings) -> WsgiApp:
    """Bolt on /slack/events plus a health check that needs neither Slack nor ngrok."""
    deps = build_deps(settings)
    handler = GuardedRequestHandler(create_app(deps))

    def wsgi_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz" and environ.get("REQUEST_METHOD") == "GET":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        return handler(environ, start_response)

    return wsgi_app


def load_app() -> AsgiApp:
    """gunicorn's app factory: settings from the environment, logging, then the app."""
    settings = load_settings_from_environment()
    configure_logging(settings.log_level, settings.secret_values())
    logging.getLogger("ngrok_ops").info("ngrok-ops serving HTTP on /slack/events")
    return buffered_wsgi(create_wsgi_app(settings), threads=BOLT_THREADS)
