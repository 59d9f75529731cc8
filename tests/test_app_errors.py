"""An unexpected error in a listener after its ack still reaches the user (and the log)."""

from __future__ import annotations

import json
import time
import urllib.parse

from slack_bolt.request import BoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.app import create_app
from bot.deps import build_deps
from bot.settings.env import load_settings
from bot.slack.views.errors import SORRY

SECRET = "unit-signing-secret-0123456789"


def test_a_listener_that_fails_after_its_ack_tells_the_user(slack_api, ngrok_api, tmp_path):
    settings = load_settings(
        {
            "SLACK_BOT_TOKEN": slack_api.bot_token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack_api.base_url,
            "NGROK_API_KEY": "ngrok-test-api-key-0123456789",
            "NGROK_API_URL": ngrok_api.base_url,
            "STATE_PATH": str(tmp_path / "state.sqlite3"),
        },
        config_text=None,
        config_source="test",
    )
    deps = build_deps(settings)
    app = create_app(deps, token_verification=False)

    def boom(ack) -> None:
        ack()
        raise RuntimeError("a bug after the ack")

    app.command("/boom")(boom)
    url = slack_api.response_url()
    body = urllib.parse.urlencode(
        {"command": "/boom", "text": "", "user_id": "U0ALICE", "channel_id": "C0OPS",
         "team_id": "T111", "response_url": url, "trigger_id": "1.2"}
    )  # fmt: skip
    ts = str(int(time.time()))
    headers = {
        "content-type": ["application/x-www-form-urlencoded"],
        "x-slack-request-timestamp": [ts],
        "x-slack-signature": [
            SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
        ],
    }
    try:
        answer = app.dispatch(BoltRequest(body=body, headers=headers))
        assert answer.status == 200 and answer.body == ""  # said once, through response_url
        reply = slack_api.wait_for("response_url", key=url.rsplit("/", 1)[1])[0]
        assert reply.body["text"] == SORRY and reply.body["response_type"] == "ephemeral"
        # A click's HTTP answer is never shown, so a click hears it through response_url too.
        app.action("boom_click")(boom)
        click_url = slack_api.response_url()
        payload = {
            "type": "block_actions", "team": {"id": "T111"}, "user": {"id": "U0ALICE"},
            "channel": {"id": "C0OPS"}, "response_url": click_url, "trigger_id": "1.3",
            "actions": [{"action_id": "boom_click", "type": "button", "value": "x"}],
        }  # fmt: skip
        click_body = "payload=" + urllib.parse.quote(json.dumps(payload))
        headers["x-slack-signature"] = [
            SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=click_body)
        ]
        assert app.dispatch(BoltRequest(body=click_body, headers=headers)).status == 200
        reply = slack_api.wait_for("response_url", key=click_url.rsplit("/", 1)[1])[0]
        assert reply.body["text"] == SORRY
    finally:
        deps.close()
