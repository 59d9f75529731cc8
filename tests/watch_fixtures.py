"""Building a bot in process for the watcher, Home and digest tests (real local servers,
real store and queue files, consumer threads)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slack_bolt import App

from bot.app import create_app
from bot.deps import Deps, build_deps
from bot.settings.env import load_settings
from tests.servers.ngrok_api import NgrokApiServer
from tests.servers.slack_api import SlackApiServer

API_KEY = "ngrok-test-api-key-0123456789"
ALERTS = "C0ALERTS"
CONFIG = """
roles:
  operator: [U0OPS]
  approver: [U0SRE]
alerts:
  channel: C0ALERTS
  poll_interval: {poll}
  min_down: {min_down}
  budget_share: 1
  flapping_window: 60s
  flapping_count: 3
  max_alerts: {max_alerts}
  alert_window: 10m
digest: {{channel: C0DIGEST, at: "09:00", timezone: Europe/Berlin}}
"""


def settings_env(tmp_path: Path, slack: SlackApiServer, ngrok: NgrokApiServer) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": "watch-test-signing-secret",
        "SLACK_API_URL": slack.base_url,
        "NGROK_API_KEY": API_KEY,
        "NGROK_API_URL": ngrok.base_url,
        "STATE_PATH": str(tmp_path / "state.sqlite3"),
        "NGROK_TIMEOUT": "5",
    }


def build(
    env: dict[str, str], *, poll: str = "1s", min_down: str = "2s", max_alerts: str = "6"
) -> Deps:
    text = CONFIG.format(poll=poll, min_down=min_down, max_alerts=max_alerts)
    settings = load_settings(env, config_text=text, config_source="test")
    return build_deps(settings)


@dataclass
class Bot:
    deps: Deps
    app: App
    slack: SlackApiServer
    ngrok: NgrokApiServer

    def alerts(self, contains: str = "") -> list[dict[str, Any]]:
        """Top-level posts in the alerts channel whose text contains `contains`."""
        return [
            c.body
            for c in self.slack.calls_to("chat.postMessage")
            if c.body.get("channel") == ALERTS
            and not c.body.get("thread_ts")
            and contains in c.body.get("text", "")
        ]

    def thread(self, ts: str) -> list[dict[str, Any]]:
        return [
            c.body for c in self.slack.calls_to("chat.postMessage") if c.body.get("thread_ts") == ts
        ]


def start_bot(
    tmp_path: Path,
    slack: SlackApiServer,
    ngrok: NgrokApiServer,
    *,
    threads: bool = True,
    env: dict[str, str] | None = None,
    **config: str,
) -> Iterator[Bot]:
    deps = build({**settings_env(tmp_path, slack, ngrok), **(env or {})}, **config)
    app = create_app(deps, token_verification=False)
    stop: Callable[[], None] | None = deps.jobs.start_threads(workers=4) if threads else None
    try:
        yield Bot(deps, app, slack, ngrok)
    finally:
        if stop is not None:
            stop()
        deps.close()


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)
