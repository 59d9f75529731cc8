"""An in-process harness for the on-call flows: the app from `create_app(deps)` against the
local Slack and ngrok stand-ins, driven with signed requests through `app.dispatch`.

Work after the ack runs on `deps.jobs`; every helper waits for it to drain, so a test reads
what the bot sent without sleeping.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.request import BoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.app import create_app
from bot.deps import Deps, build_deps
from bot.settings.env import load_settings
from bot.slack.views.progress import is_working
from tests.servers.ngrok_api import NgrokApiServer
from tests.servers.slack_api import SlackApiServer, SlackCall

SECRET = "oncall-signing-secret-0123456789"
NGROK_KEY = "oncall-ngrok-api-key-0123456789"
ALICE, BOB, VIEWER = "U0ALICE", "U0BOB", "U0VIEWER"
OPS, CLOSED = "C0OPS", "C0CLOSED"
CONFIG = f"""
roles:
  operator: [{ALICE}]
  approver: [{BOB}]
  viewer: [{VIEWER}]
channels:
  {OPS}: {{account: default, actions: true}}
  {CLOSED}: {{account: default, actions: false}}
rules:
  - action: stop
    approval: two-person
  - action: [restart, update]
    approval: self
approval_ttl: 10m
"""


def texts(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False)


@dataclass
class Harness:
    app: App
    deps: Deps
    slack: SlackApiServer
    ngrok: NgrokApiServer
    stop_consumer: Callable[[], None]

    def close(self) -> None:
        self.stop_consumer()
        self.deps.close()

    def _signed(self, body: str, content_type: str) -> BoltResponse:
        ts = str(int(time.time()))
        headers = {
            "content-type": [content_type],
            "x-slack-request-timestamp": [ts],
            "x-slack-signature": [
                SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
            ],
        }
        response = self.app.dispatch(BoltRequest(body=body, headers=headers))
        assert self.deps.jobs.wait_idle(20), "jobs did not drain"
        return response

    def slash(
        self, text: str, *, user: str = ALICE, channel: str = OPS
    ) -> tuple[BoltResponse, str]:
        url = self.slack.response_url()
        body = urllib.parse.urlencode(
            {"command": "/ngrok", "text": text, "user_id": user, "channel_id": channel,
             "team_id": "T111", "response_url": url, "trigger_id": f"1.2.{uuid.uuid4().hex}"}
        )  # fmt: skip
        response = self._signed(body, "application/x-www-form-urlencoded")
        assert response.status == 200, response.body
        return response, url.rsplit("/", 1)[1]

    def replies(self, key: str) -> list[dict[str, Any]]:
        return [c.body for c in self.slack.calls_to("response_url", key=key)]

    def answer(self, key: str) -> dict[str, Any]:
        """The last reply to a response_url that is not a placeholder."""
        answers = [b for b in self.replies(key) if not is_working(b)]
        assert answers, f"no answer on {key}: {self.replies(key)}"
        return answers[-1]

    def ask(self, text: str, **where: str) -> dict[str, Any]:
        _, key = self.slash(text, **where)
        return self.answer(key)

    def click(
        self, element: dict[str, Any], *, user: str = ALICE, channel: str = OPS,
        option: dict[str, Any] | None = None, ephemeral: bool = True,
        message_ts: str = "1700000000.000100",
    ) -> str:  # fmt: skip
        """Clicks a button (or picks `option` of a select/overflow); returns the key."""
        url = self.slack.response_url()
        action: dict[str, Any] = {
            "action_id": element["action_id"], "block_id": "b", "type": element["type"],
        }  # fmt: skip
        if option is not None:
            action["selected_option"] = option
        else:
            action["value"] = element.get("value", "")
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "team_id": "T111"},
            "api_app_id": "A111",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                          "is_ephemeral": ephemeral},
            "trigger_id": "111.222.valid",
            "team": {"id": "T111"},
            "channel": {"id": channel},
            "response_url": url,
            "actions": [{**action, "action_ts": "1700000000.1"}],
        }  # fmt: skip
        if not ephemeral:
            payload["message"] = {"type": "message", "ts": message_ts, "text": ""}
        body = "payload=" + urllib.parse.quote(json.dumps(payload))
        response = self._signed(body, "application/x-www-form-urlencoded")
        assert response.status == 200, response.body
        return url.rsplit("/", 1)[1]

    def submit_view(
        self, view: dict[str, Any], values: dict[str, Any], *, user: str
    ) -> BoltResponse:
        payload = {
            "type": "view_submission",
            "user": {"id": user, "team_id": "T111"},
            "api_app_id": "A111",
            "team": {"id": "T111"},
            "trigger_id": "111.333.valid",
            "view": {**view, "id": "V1", "state": {"values": values}},
        }
        body = "payload=" + urllib.parse.quote(json.dumps(payload))
        return self._signed(body, "application/x-www-form-urlencoded")

    def mention(self, text: str, *, user: str = ALICE, channel: str = OPS,
                thread_ts: str = "1700000000.000200") -> None:  # fmt: skip
        body = json.dumps({
            "type": "event_callback", "team_id": "T111", "api_app_id": "A111",
            "event_id": f"Ev{time.monotonic_ns()}",
            "event": {"type": "app_mention", "user": user, "channel": channel,
                      "text": f"<@UBOT1> {text}", "ts": "1700000000.000300",
                      "thread_ts": thread_ts},
        })  # fmt: skip
        assert self._signed(body, "application/json").status == 200

    def posted(self, method: str) -> list[SlackCall]:
        return self.slack.calls_to(method)


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for block in message.get("blocks") or []:
        for element in [*(block.get("elements") or []), block.get("accessory") or {}]:
            if element.get("action_id"):
                found.append(element)
    return found


def button(message: dict[str, Any], action_id: str) -> dict[str, Any]:
    return next(b for b in buttons(message) if b["action_id"] == action_id)


def start(
    tmp_path: Any, slack: SlackApiServer, ngrok: NgrokApiServer, *, config: str | None = CONFIG
) -> Harness:
    settings = load_settings(
        {
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.base_url,
            "NGROK_API_KEY": NGROK_KEY,
            "NGROK_API_URL": ngrok.base_url,
            "STATE_PATH": str(tmp_path / "state.sqlite3"),
            "APPROVAL_SECRET": "oncall-approval-secret-0123456789abcdef",
            "UPDATE_RESTART_DELAY": "0.2",
            "FLEET_CACHE_SECONDS": "0",
        },
        config_text=config,
        config_source="test",
    )
    deps = build_deps(settings, private_queue=True)
    app = create_app(deps, token_verification=False, process_before_response=True)
    return Harness(app, deps, slack, ngrok, deps.jobs.start_threads(workers=4))
