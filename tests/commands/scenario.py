"""In-process scenarios: the app from `create_app(deps)`, Slack-shaped signed requests sent
through `app.dispatch(BoltRequest(...))`, real HTTP to the ngrok and Slack stand-ins.

`scenario_factory(config=..., env=..., ngrok=..., slack=...)` returns a `Stack` (the same
class the end-to-end tests drive) whose sender dispatches in process and returns only once
the work a request started has finished (`settle`), so tests never sleep. After every test
the fixture checks, as the end-to-end fixture does, that no secret reached a log line, an
audit line or a Slack call, and that no raw mention or markup from agent metadata reached
Slack.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from slack_bolt import App, BoltRequest

from bot.app import create_app
from bot.deps import Deps, build_deps
from bot.logs import RedactingFormatter
from bot.settings.env import load_settings
from tests.bot_process import SlackSender
from tests.e2e_fixtures import DEFAULT_CONFIG, NGROK_KEY, Stack, bot_env_for, secrets_of
from tests.servers.ngrok_api import NgrokApiServer
from tests.servers.slack_api import SlackApiServer

SETTLE_TIMEOUT = 30.0  # generous for a noisy 2-core machine; only a hang ever waits this long


def settle(deps: Deps, timeout: float = SETTLE_TIMEOUT) -> None:
    """Returns once the jobs a request started have run, including jobs scheduled to run
    within `timeout` (an update's restart): the ONE place that knows how work is queued.
    The app is built with process_before_response, so dispatch() returns only after the
    listener has enqueued its job."""
    assert deps.jobs.wait_idle(timeout), "jobs did not drain"


class FakeClock:
    """`deps.clock`: the wall clock at the start, moved only by `advance`."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class InProcessSender(SlackSender):
    """SlackSender's payloads and signatures, dispatched into the app instead of over HTTP."""

    def __init__(self, app: App, deps: Deps) -> None:
        super().__init__("in-process")
        self.app, self.deps = app, deps
        # False: return as soon as the listener enqueued (tests that hold the queue's threads
        # and look at what runs meanwhile); they settle themselves once they let go.
        self.settling = True

    def send(self, body: str, headers: dict[str, str]) -> httpx.Response:
        response = self.app.dispatch(BoltRequest(body=body, headers=headers))
        if self.settling:
            settle(self.deps)
        content_type = (response.headers.get("content-type") or ["text/plain"])[0]
        return httpx.Response(
            response.status, headers={"content-type": content_type}, content=response.body.encode()
        )


class InProcessBot:
    """What the end-to-end tests read from a bot process, read from this one: the audit
    lines it prints on stdout and its log lines, formatted as production formats them."""

    def __init__(
        self, env: dict[str, str], deps: Deps, out: io.StringIO, caplog: pytest.LogCaptureFixture
    ) -> None:
        self.env, self.deps = env, deps
        self._out, self._caplog = out, caplog

    def stdout(self) -> str:
        return self._out.getvalue()

    def stderr(self) -> str:
        return self._caplog.text

    def audit_records(self) -> list[dict]:
        return [
            json.loads(line)["audit"]
            for line in self.stdout().splitlines()
            if line.startswith('{"audit"')
        ]


@pytest.fixture
def scenario_factory(
    tmp_path: Path,
    ngrok_api_factory: Callable[..., NgrokApiServer],
    slack_api_factory: Callable[..., SlackApiServer],
    caplog: pytest.LogCaptureFixture,
) -> Iterator[Callable[..., Stack]]:
    built: list[tuple[Stack, Deps, Callable[[], None]]] = []

    def start(
        *,
        config: str | None = DEFAULT_CONFIG,
        env: dict[str, str] | None = None,
        ngrok: dict | None = None,
        slack: dict | None = None,
    ) -> Stack:
        # A key of its own: the process-wide pacer of one key must not carry another
        # test's requests into this one's rate-limit window.
        ngrok_key = NGROK_KEY[:-8] + secrets.token_hex(4)
        # restart_delay 0: a restarted agent is back at the bot's first look for it (the
        # bot polls every 2 s of real time; test_approve.py's first test covers a later look).
        ngrok_server = ngrok_api_factory(
            **{"sessions": 30, "restart_delay": 0.0, "api_key": ngrok_key, **(ngrok or {})}
        )
        slack_server = slack_api_factory(**(slack or {}))
        folder = tmp_path / f"bot{len(built)}"
        folder.mkdir()
        bot_env = bot_env_for(ngrok_server, slack_server, folder, ngrok_key=ngrok_key, env=env)
        settings = load_settings(bot_env, config_text=config, config_source="scenario")
        caplog.set_level(logging.INFO)
        caplog.handler.setFormatter(
            RedactingFormatter("%(levelname)s %(name)s: %(message)s", settings.secret_values())
        )
        out = io.StringIO()
        with contextlib.redirect_stdout(out):  # the audit lines' stream is fixed here
            deps = build_deps(settings, private_queue=True)
        deps.clock = FakeClock()
        app = create_app(deps, process_before_response=True)
        stop_consumer = deps.jobs.start_threads(workers=4)
        bot = InProcessBot(bot_env, deps, out, caplog)
        sender = InProcessSender(app, deps)
        stack = Stack(ngrok_server, slack_server, bot, sender, secrets_of(bot_env, slack_server))
        built.append((stack, deps, stop_consumer))
        return stack

    yield start
    for stack, deps, stop_consumer in built:
        settle(deps)
        stop_consumer()
        deps.close()
        stack.scan_for_secrets()
        stack.scan_for_unescaped_metadata()


@pytest.fixture
def stack(scenario_factory: Callable[..., Stack]) -> Stack:
    """The default scenario: the DEFAULT_CONFIG roles and channels, a fleet of 30."""
    return scenario_factory()


def deps_of(stack: Stack) -> Deps:
    return stack.bot.deps


def clock_of(stack: Stack) -> FakeClock:
    return deps_of(stack).clock
