"""The WSGI app for gunicorn (HTTP mode): POST /slack/events for Slack, GET /healthz.

gunicorn calls `load_app()` in each worker (`'bot.wsgi:load_app()'`), so importing this
module builds nothing; bot/gunicorn_conf.py has already checked the settings in the master.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.app import create_app
from bot.deps import build_deps
from bot.logs import configure_logging
from bot.settings.env import Settings, load_settings_from_environment

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def create_wsgi_app(settings: Settings) -> WsgiApp:
    """Bolt on /slack/events plus a health check that needs neither Slack nor ngrok."""
    deps = build_deps(settings)
    handler = SlackRequestHandler(create_app(deps))

    def wsgi_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz" and environ.get("REQUEST_METHOD") == "GET":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        return handler(environ, start_response)

    return wsgi_app


def load_app() -> WsgiApp:
    """gunicorn's app factory: settings from the environment, logging, then the app."""
    settings = load_settings_from_environment()
    configure_logging(settings.log_level, settings.secret_values())
    logging.getLogger("ngrok_ops").info("ngrok-ops serving HTTP on /slack/events")
    return create_wsgi_app(settings)
