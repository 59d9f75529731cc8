"""Settings for `python -m bot console`: the environment as usual, minus Slack.

The console serves Slack in process, so no SLACK_* setting is read or required: the bot
token is a placeholder that only ever reaches the console's own loopback server (the
Slack API URL), and the signing secret is a fresh random key the console signs its own
requests with. With `demo`, the ngrok account is the
in-process simulation and, unless BOT_CONFIG is set, a built-in config makes the default
console user an operator.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping

from bot.settings.env import Settings, load_settings, load_settings_from_environment

DEMO_OPERATOR = "U0DEMOOPS"
DEMO_APPROVER = "U0DEMOSRE"
DEMO_CONFIG = f"""\
# The demo's roles and rules: the console user {DEMO_OPERATOR} may restart, update and stop;
# stopping needs a second person ({DEMO_APPROVER}: try `--as {DEMO_APPROVER}`).
roles:
  operator: [{DEMO_OPERATOR}, {DEMO_APPROVER}]
  approver: [{DEMO_APPROVER}]
rules:
  - action: stop
    approval: two-person
  - action: [restart, update]
    approval: self
approval_ttl: 10m
"""
DROPPED = ("REDIS_URL",)  # the demo's state is its own, in a temporary file


def console_environment(
    env: Mapping[str, str],
    *,
    demo: bool,
    slack_api_url: str,
    demo_api_key: str,
    demo_api_url: str,
    state_path: str,
) -> dict[str, str]:
    """The environment the console's settings are read from (pure, for tests)."""
    prepared = {k: v for k, v in env.items() if not k.startswith("SLACK_")}
    prepared["SLACK_BOT_TOKEN"] = "xoxb-console-offline"
    prepared["SLACK_SIGNING_SECRET"] = secrets.token_hex(16)
    prepared["SLACK_API_URL"] = slack_api_url
    if demo:
        for name in DROPPED:
            prepared.pop(name, None)
        prepared.update(
            NGROK_API_KEY=demo_api_key, NGROK_API_URL=demo_api_url, STATE_PATH=state_path
        )
        prepared.setdefault("UPDATE_RESTART_DELAY", "10")
    # The console prints every answer itself; the log's warnings (a 404 from ngrok, say)
    # would repeat them on the same screen.
    prepared.setdefault("LOG_LEVEL", "ERROR")
    return prepared


def load_console_settings(
    *, demo: bool, slack_api_url: str, demo_api_key: str, demo_api_url: str, state_path: str
) -> Settings:
    """Reads the process environment (and BOT_CONFIG) for the console; SettingsError lists
    what is wrong, as at a normal start-up."""
    env = console_environment(
        os.environ,
        demo=demo,
        slack_api_url=slack_api_url,
        demo_api_key=demo_api_key,
        demo_api_url=demo_api_url,
        state_path=state_path,
    )
    if demo and not env.get("BOT_CONFIG", "").strip():
        return load_settings(env, config_text=DEMO_CONFIG, config_source="(demo config)")
    return load_settings_from_environment(env)
