"""The whole stack: local ngrok API, local Slack API, and the bot.

`stack_factory(config=..., env=...)` starts the bot from the Procfile's `web:` command with
SLACK_API_URL and NGROK_API_URL pointed at the stand-ins; `Stack` sends signed requests and
waits for what the bot posts back. The in-process scenarios (tests/commands/scenario.py)
drive the same `Stack` with the bot built in the test's own process.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from slack_sdk.models.blocks import Block

from bot.slack.views.progress import is_working
from tests.bot_process import SIGNING_SECRET, BotProcess, SlackSender
from tests.servers.ngrok_api import NgrokApiServer
from tests.servers.slack_api import SlackApiServer, SlackCall

ALICE, BOB, CAROL, MALLORY = "U0ALICE", "U0BOB", "U0CAROL", "U0MALLORY"
OPS, OTHER = "C0OPS", "C0OTHER"
THREAD = "1700000000.000200"
NGROK_KEY = "2AbCdEfGhIjKlMnOpQrStUvWxYz_e2eNgrokKey0123456789"

DEFAULT_CONFIG = f"""
roles:
  operator: [{ALICE}, {CAROL}, S0ONCALL]
  approver: [{BOB}, {CAROL}]
channels:
  {OPS}: {{account: default, actions: true}}
  {OTHER}: {{account: default, actions: false}}
rules:
  - action: stop
    approval: two-person
  - action: [restart, update]
    approval: self
approval_ttl: 10m
"""


# Every action needs a second person (fleet runs included).
TWO_PERSON_CONFIG = f"""
roles:
  operator: [{ALICE}, {CAROL}]
  approver: [{BOB}, {CAROL}]
channels:
  {OPS}: {{account: default, actions: true}}
rules:
  - action: [restart, stop, update]
    approval: two-person
approval_ttl: 10m
"""


def validate_message(body: dict) -> None:
    """Every block the bot sends must parse with slack_sdk's models and validate."""
    for raw in body.get("blocks") or []:
        block = Block.parse(raw)
        assert block is not None, raw
        block.validate_json()


@dataclass
class Stack:
    ngrok: NgrokApiServer
    slack: SlackApiServer
    bot: BotProcess
    sender: SlackSender
    secrets: list[str] = field(default_factory=list)

    def slash(
        self, text: str, *, user: str = ALICE, channel: str = OPS
    ) -> tuple[httpx.Response, str]:
        """Sends `/ngrok text`; returns the HTTP answer and the response_url key."""
        url = self.slack.response_url()
        response = self.sender.command(text, user=user, channel=channel, response_url=url)
        assert response.status_code == 200, response.text
        return response, url.rsplit("/", 1)[1]

    def reply(self, key: str, count: int = 1, timeout: float = 15.0) -> dict:
        """The `count`-th answer posted to a response_url, validated; "working…"
        placeholders (block_id `working`) are not answers and are skipped."""
        calls = self.slack.wait_for(
            "response_url", count, key=key, timeout=timeout,
            predicate=lambda c: not is_working(c.body),
        )  # fmt: skip
        body = calls[count - 1].body
        validate_message(body)
        return body

    def ask(self, text: str, **kwargs: str) -> dict:
        """`/ngrok text` and its first reply."""
        _, key = self.slash(text, **kwargs)
        return self.reply(key)

    def click(
        self, button: dict, *, user: str = ALICE, channel: str = OPS, ephemeral: bool = True,
        message_ts: str = "1700000000.000100", thread_ts: str | None = None,
    ) -> str:  # fmt: skip
        url = self.slack.response_url()
        response = self.sender.click(
            button, user=user, channel=channel, response_url=url, ephemeral=ephemeral,
            message_ts=message_ts, thread_ts=thread_ts,
        )  # fmt: skip
        assert response.status_code == 200, response.text
        return url.rsplit("/", 1)[1]

    def pick(
        self, select: dict, label: str, *, user: str = ALICE, channel: str = OPS,
        value: str | None = None,
    ) -> str:  # fmt: skip
        """Picks `label` in a select menu (see SlackSender.pick); returns the response_url
        key of the click."""
        url = self.slack.response_url()
        response = self.sender.pick(
            select, label, value=value, user=user, channel=channel, response_url=url
        )
        assert response.status_code == 200, response.text
        return url.rsplit("/", 1)[1]

    def posted(
        self, method: str, count: int = 1, timeout: float = 15.0, **kw: object
    ) -> list[SlackCall]:
        calls = self.slack.wait_for(method, count, timeout=timeout, **kw)
        for call in calls:
            validate_message(call.body)
        return calls

    def action_posts(self, session_id: str | None = None) -> list:
        """POSTs that reached the ngrok API for restart/stop/update."""
        posts = [r for r in self.ngrok.log() if r.method == "POST"]
        return [r for r in posts if session_id is None or session_id in r.path]

    def scan_for_unescaped_metadata(self) -> None:
        """The fleet's metadata holds `<!channel>`, `<@U123>` and `<#C042|ops>`; none of it may
        reach Slack unescaped, in any message of any test."""
        for call in self.slack.calls():
            sent = json.dumps(call.body)
            for raw in ("<!channel>", "<@U123>", "<#C042|ops>", "<b>bold</b>"):
                assert raw not in sent, f"unescaped {raw!r} sent to {call.method}"

    def scan_for_secrets(self) -> None:
        """No secret in anything the bot printed or sent to Slack (run after every test)."""
        texts = [self.bot.stdout(), self.bot.stderr()]
        texts += [json.dumps(call.body) for call in self.slack.calls()]
        for secret in self.secrets:
            for text in texts:
                assert secret not in text, f"a secret leaked: {secret[:4]}…"


def at_once(*calls: Callable[[], object]) -> None:
    """Runs the calls in parallel threads and waits for all of them (double clicks, races)."""
    threads = [threading.Thread(target=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def assert_one_post(stack: Stack, session_id: str, *, settle: float = 1.0) -> None:
    """Exactly one restart/stop/update reached ngrok for the session, also after a pause
    long enough for any second one to arrive."""
    wait_until(lambda: stack.action_posts(session_id), what="the action's POST")
    time.sleep(settle)
    assert len(stack.action_posts(session_id)) == 1


def session_id_of(kind: str, ngrok: NgrokApiServer) -> str:
    """An online session id of a kind: 'linux', 'windows', 'ssh'."""
    for session_id in ngrok.session_ids():
        raw = ngrok.session(session_id) or {}
        if kind == "ssh" and raw.get("transport") == "ssh":
            return session_id
        if raw.get("transport") == "ssh":
            continue
        if kind == raw.get("os") and raw.get("agent_version") != "3.26.1":
            return session_id
    raise AssertionError(f"no {kind} session in the fleet")


def wait_until(predicate: Callable[[], object], timeout: float = 15.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def texts_of(body: dict) -> str:
    """All text of a message, for assertions on wording."""
    return body.get("text", "") + " " + json.dumps(body.get("blocks") or [])


def bot_env_for(
    ngrok_server: NgrokApiServer,
    slack_server: SlackApiServer,
    state_dir: Path,
    *,
    ngrok_key: str = NGROK_KEY,
    env: dict[str, str] | None = None,
) -> dict[str, str]:
    """The bot's environment for a stack: the stand-ins' URLs, quick delays, a state file."""
    slack_server.set_usergroup("S0ONCALL", ["U0DAVE"])
    return {
        "SLACK_BOT_TOKEN": slack_server.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack_server.base_url,
        "NGROK_API_KEY": ngrok_key,
        "NGROK_API_URL": ngrok_server.base_url,
        "STATE_PATH": str(state_dir / "state.sqlite3"),
        "UPDATE_RESTART_DELAY": "0.3",
        "GROUP_CACHE_SECONDS": "0",
        "APPROVAL_SECRET": "e2e-approval-secret-0123456789abcdef",
        **(env or {}),
    }


def secrets_of(bot_env: dict[str, str], slack_server: SlackApiServer) -> list[str]:
    """Every secret a stack's bot knows: none may appear in a log or a Slack call."""
    return [
        slack_server.bot_token, slack_server.app_token, SIGNING_SECRET, bot_env["NGROK_API_KEY"],
        bot_env["APPROVAL_SECRET"],
    ]  # fmt: skip


@pytest.fixture
def stack_factory(
    tmp_path: Path,
    ngrok_api_factory: Callable[..., NgrokApiServer],
    slack_api_factory: Callable[..., SlackApiServer],
) -> Iterator[Callable[..., Stack]]:
    bots: list[BotProcess] = []
    stacks: list[Stack] = []

    def start(
        *, config: str | None = DEFAULT_CONFIG, env: dict[str, str] | None = None,
        ngrok: dict | None = None, slack: dict | None = None, kind: str = "web",
    ) -> Stack:  # fmt: skip
        ngrok_server = ngrok_api_factory(
            **{"sessions": 30, "restart_delay": 0.1, "api_key": NGROK_KEY, **(ngrok or {})}
        )
        slack_server = slack_api_factory(**(slack or {}))
        bot_env = bot_env_for(ngrok_server, slack_server, tmp_path, env=env)
        if config is not None:
            (tmp_path / "config.yml").write_text(config)
            bot_env["BOT_CONFIG"] = str(tmp_path / "config.yml")
        if kind == "worker":
            bot_env["SLACK_APP_TOKEN"] = slack_server.app_token
        bot = BotProcess(bot_env, kind=kind, log_dir=tmp_path)
        bots.append(bot)
        bot.start(wait_healthy=kind == "web")
        secrets = secrets_of(bot_env, slack_server)
        stack = Stack(ngrok_server, slack_server, bot, SlackSender(bot.events_url), secrets)
        stacks.append(stack)
        return stack

    yield start
    killed = []
    for bot in bots:  # every bot is stopped even when one had to be killed
        try:
            bot.stop()
        except AssertionError as error:
            killed.append(str(error))
    for stack in stacks:
        stack.scan_for_secrets()
        stack.scan_for_unescaped_metadata()
    assert not killed, "\n\n".join(killed)
