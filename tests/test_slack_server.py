"""The Slack stand-in, driven by the real slack_sdk / slack_bolt clients the bot uses."""

import json
import threading
import time
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import pytest
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*hello*"}}


# The approval prompt example of shared/reference/slack-platform.md §4, abridged.
BUTTON = {
    "type": "button",
    "action_id": "ngrok_approve",
    "style": "danger",
    "text": {"type": "plain_text", "text": "Stop session"},
    "value": '{"op":"stop","id":"ts_334AeguNPwngGnMIrd3SZLE7pdZ","ch":"C111"}',
    "confirm": {
        "title": {"type": "plain_text", "text": "Stop this agent?"},
        "text": {"type": "mrkdwn", "text": "The agent process will exit."},
        "confirm": {"type": "plain_text", "text": "Stop"},
        "deny": {"type": "plain_text", "text": "Cancel"},
        "style": "danger",
    },
}
APPROVAL = {"type": "actions", "block_id": "ngrok_approve:ts_1", "elements": [BUTTON]}


def web(server, token=None, **options):
    return WebClient(
        token=server.bot_token if token is None else token, base_url=server.base_url, **options
    )


def api_error(call) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        call()
    return info.value


def test_auth_test_answers_the_bot_identity_and_records_the_call(slack_api_factory):
    server = slack_api_factory(team_id="T999", bot_user_id="UB9", bot_id="B9")
    data = web(server).auth_test().data
    assert data["ok"] is True
    assert (data["team_id"], data["user_id"], data["bot_id"]) == ("T999", "UB9", "B9")
    assert data["is_enterprise_install"] is False
    (call,) = server.calls_to("auth.test")
    assert call.headers["authorization"] == f"Bearer {server.bot_token}"
    assert call.ok and call.status == 200 and call.key is None


def test_post_message_json_body_is_recorded_and_ts_increases(slack_api):
    client = web(slack_api)
    first = client.chat_postMessage(channel="C1", text="hi", blocks=[SECTION], thread_ts="1.2")
    second = client.chat_postMessage(channel="C1", text="again")
    assert first["ts"] < second["ts"]
    assert first["ts"].split(".")[0].isdigit() and len(first["ts"].split(".")[1]) == 6
    assert first["message"]["thread_ts"] == "1.2"
    assert first["message"]["bot_id"] == slack_api.bot_id
    call = slack_api.calls_to("chat.postMessage")[0]
    assert call.headers["content-type"].startswith("application/json")
    assert call.body == {"channel": "C1", "text": "hi", "blocks": [SECTION], "thread_ts": "1.2"}
    assert call.response["ts"] == first["ts"]


def test_form_bodies_are_parsed_and_json_fields_decoded(slack_api):
    client = web(slack_api)
    form = {"channel": "C1", "text": "form", "blocks": json.dumps([SECTION]), "unfurl_links": False}
    assert client.api_call("chat.postMessage", params=form)["ok"]
    call = slack_api.calls_to("chat.postMessage")[0]
    assert call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert call.body == {"channel": "C1", "text": "form", "blocks": [SECTION], "unfurl_links": "0"}


def test_post_ephemeral_update_and_permalink(slack_api):
    client = web(slack_api)
    posted = client.chat_postMessage(channel="C1", text="old")
    updated = client.chat_update(channel="C1", ts=posted["ts"], text="new", blocks=[SECTION])
    assert (updated["ts"], updated["text"]) == (posted["ts"], "new")
    assert updated["message"]["blocks"] == [SECTION]
    ephemeral = client.chat_postEphemeral(channel="C1", user="U1", text="psst")
    assert ephemeral["message_ts"] > posted["ts"]
    for channel, ts in (("C1", ephemeral["message_ts"]), ("C2", posted["ts"]), ("C1", "1.1")):
        err = api_error(lambda c=channel, t=ts: client.chat_update(channel=c, ts=t, text="x"))
        assert err.response["error"] == "message_not_found"
    link = client.chat_getPermalink(channel="C1", message_ts=posted["ts"])["permalink"]
    assert link.endswith(f"/archives/C1/p{posted['ts'].replace('.', '')}")
    for channel, ts in (("C2", posted["ts"]), ("C1", "1.1")):
        err = api_error(lambda c=channel, t=ts: client.chat_getPermalink(channel=c, message_ts=t))
        assert err.response["error"] == "message_not_found"


def test_lookups_and_usergroups(slack_api_factory):
    server = slack_api_factory(usergroups={"S1": ["U1", "U2"]})
    client = web(server)
    assert client.conversations_info(channel="C7")["channel"]["id"] == "C7"
    assert client.users_info(user="U5")["user"]["id"] == "U5"
    assert client.usergroups_users_list(usergroup="S1")["users"] == ["U1", "U2"]
    server.set_usergroup("S2", ["U3"])
    assert client.usergroups_users_list(usergroup="S2")["users"] == ["U3"]
    err = api_error(lambda: client.usergroups_users_list(usergroup="S404"))
    assert err.response["error"] == "no_such_subteam"
    assert server.calls_to("usergroups.users.list")[0].body["usergroup"] == "S1"


def test_unknown_methods_succeed_and_are_recorded(slack_api):
    assert web(slack_api).reactions_add(channel="C1", timestamp="1.2", name="eyes")["ok"]
    (call,) = slack_api.calls_to("reactions.add")
    assert call.body == {"channel": "C1", "timestamp": "1.2", "name": "eyes"}


def test_a_realistic_approval_prompt_is_accepted(slack_api):
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Stop?"}},
        SECTION,
        APPROVAL,
    ]
    assert web(slack_api).chat_postMessage(channel="C1", text="Stop?", blocks=blocks)["ok"]
    hook = WebhookClient(slack_api.response_url())
    assert hook.send(text="Stop?", blocks=blocks, response_type="ephemeral").status_code == 200


@pytest.mark.parametrize(
    ("body", "error", "reason"),
    [
        ({"channel": "C1"}, "no_text", "neither text"),
        ({"text": "x", "blocks": [SECTION]}, "channel_not_found", None),
        ({"channel": "C1", "blocks": [{"type": "divider"}] * 51}, "invalid_blocks", "51 blocks"),
        ({"channel": "C1", "blocks": [{"type": "bogus_block"}]}, "invalid_blocks", "unknown block"),
        (
            {
                "channel": "C1",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
            },
            "invalid_blocks",
            "3000",
        ),
        (
            {
                "channel": "C1",
                "blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}],
            },
            "invalid_blocks",
            "plain_text",
        ),
        (
            {"channel": "C1", "blocks": [{"type": "actions", "elements": []}]},
            "invalid_blocks",
            "element",
        ),
        (
            {
                "channel": "C1",
                "blocks": [dict(APPROVAL, elements=[dict(BUTTON, value="v" * 2001)])],
            },
            "invalid_blocks",
            "2000",
        ),
        ({"channel": "C1", "blocks": "not json"}, "invalid_blocks_format", "array"),
    ],
)
def test_messages_slack_would_refuse_are_refused(slack_api, body, error, reason):
    err = api_error(lambda: web(slack_api).api_call("chat.postMessage", json=dict(body)))
    assert err.response.status_code == 200
    assert err.response["error"] == error
    (call,) = slack_api.calls_to("chat.postMessage")
    assert call.error == error
    if reason:
        assert reason in call.body["_invalid_reason"]


def test_tokens_are_checked_like_slack(slack_api):
    err = api_error(
        lambda: web(slack_api, token="xoxb-wrong").chat_postMessage(channel="C1", text="x")
    )
    assert (err.response.status_code, err.response["error"]) == (200, "invalid_auth")
    err = api_error(lambda: web(slack_api, token="").auth_test())
    assert err.response["error"] == "not_authed"
    err = api_error(lambda: web(slack_api, token=slack_api.app_token).auth_test())
    assert err.response["error"] == "not_allowed_token_type"
    err = api_error(lambda: web(slack_api).apps_connections_open(app_token=slack_api.bot_token))
    assert err.response["error"] == "not_allowed_token_type"
    url = web(slack_api).apps_connections_open(app_token=slack_api.app_token)["url"]
    assert url.startswith("ws://127.0.0.1:") and "/link/?ticket=" in url
    assert [c.ok for c in slack_api.calls()] == [False, False, False, False, True]


def test_rate_limit_is_retried_by_the_sdk_handler(slack_api):
    slack_api.fail_next("chat.postMessage", retry_after=0)
    client = web(slack_api, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
    assert client.chat_postMessage(channel="C1", text="x")["ok"]
    calls = slack_api.calls_to("chat.postMessage")
    assert [(c.status, c.error) for c in calls] == [(429, "ratelimited"), (200, None)]


def test_fail_next_sends_retry_after_and_counts_down(slack_api):
    slack_api.fail_next("chat.update", status=503, error="service_unavailable", retry_after=None)
    slack_api.fail_next("chat.postMessage", times=2)
    client = web(slack_api, retry_handlers=[])
    for _ in range(2):
        err = api_error(lambda: client.chat_postMessage(channel="C1", text="x"))
        assert err.response.status_code == 429
        assert err.response.headers["Retry-After"] == "1"
    assert client.chat_postMessage(channel="C1", text="x")["ok"]
    err = api_error(lambda: client.chat_update(channel="C1", ts="1.1", text="x"))
    assert (err.response.status_code, err.response["error"]) == (503, "service_unavailable")
    assert "Retry-After" not in err.response.headers


def test_response_url_has_a_budget_of_five_uses(slack_api):
    url = slack_api.response_url()
    hook = WebhookClient(url)
    statuses = [hook.send(text=f"reply {n}").status_code for n in range(5)]
    spent = hook.send(text="one too many")
    assert statuses == [200] * 5
    assert (spent.status_code, spent.body) == (404, "used_url")
    other = WebhookClient(slack_api.response_url("other")).send(text="x", replace_original=True)
    assert (other.status_code, other.body) == (200, "ok")
    key = url.rsplit("/", 1)[1]
    calls = slack_api.calls_to("response_url", key=key)
    assert [c.ok for c in calls] == [True] * 5 + [False]
    assert calls[0].body == {"text": "reply 0"}
    assert slack_api.calls_to("response_url", key="other")[0].body["replace_original"] is True


def test_response_url_validates_blocks_without_spending_a_use(slack_api):
    hook = WebhookClient(slack_api.response_url("k"))
    bad = hook.send(text="x", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": ""}}])
    assert (bad.status_code, bad.body) == (400, "invalid_blocks")
    assert "empty text" in slack_api.calls_to("response_url")[0].body["_invalid_reason"]
    assert hook.send(text="", blocks=None).status_code == 400
    assert hook.send_dict({"delete_original": True}).status_code == 200
    assert [hook.send(text="x").status_code for _ in range(4)] == [200] * 4
    assert hook.send(text="x").status_code == 404


def test_wait_for_waits_for_late_calls_and_dumps_calls_on_timeout(slack_api):
    client = web(slack_api)
    client.chat_postMessage(channel="C1", text="early")
    timer = threading.Timer(0.2, lambda: client.chat_postMessage(channel="C1", text="late"))
    timer.start()
    calls = slack_api.wait_for("chat.postMessage", predicate=lambda c: c.body["text"] == "late")
    timer.join()
    assert [c.body["text"] for c in calls] == ["late"]
    form = urlencode({"token": slack_api.bot_token, "channel": "C1"}).encode()
    with urlopen(Request(slack_api.base_url + "chat.postMessage", data=form), timeout=5) as resp:
        assert json.load(resp)["error"] == "no_text"  # the body token was accepted
    with pytest.raises(AssertionError) as info:
        slack_api.wait_for("chat.update", timeout=0.2)
    message = str(info.value)
    assert "chat.postMessage" in message and "early" in message and "no_text" in message
    assert slack_api.bot_token not in message
    slack_api.clear()
    assert slack_api.calls() == []


def test_socket_mode_rejects_unknown_tickets_and_says_hello(slack_api):
    port = web(slack_api).apps_connections_open(app_token=slack_api.app_token)["url"].split(":")[2]
    with pytest.raises(InvalidStatus) as info:
        connect(f"ws://127.0.0.1:{port}/link/?ticket=forged", open_timeout=5)
    assert info.value.response.status_code == 401
    url = web(slack_api).apps_connections_open(app_token=slack_api.app_token)["url"]
    with connect(url, open_timeout=5) as ws:
        hello = json.loads(ws.recv(timeout=5))
        assert hello["type"] == "hello" and hello["num_connections"] == 1
        assert hello["connection_info"] == {"app_id": slack_api.app_id}
        with pytest.raises(AssertionError, match="no ack"):
            slack_api.send_envelope("interactive", {"type": "block_actions"}, timeout=0.3)
        envelope = json.loads(ws.recv(timeout=5))
        assert envelope["type"] == "interactive" and envelope["accepts_response_payload"] is True


def test_bolt_socket_mode_handler_round_trip(slack_api):
    app = App(client=web(slack_api), signing_secret="unused-in-socket-mode")

    @app.command("/cmd")
    def cmd(ack, command):
        ack(f"got {command['text']}")

    @app.event("app_mention")
    def mention(event, say):
        say(text=f"heard {event['text']}", thread_ts=event["ts"])

    handler = SocketModeHandler(app, app_token=slack_api.app_token)
    connecting = threading.Thread(target=handler.connect)
    connecting.start()
    try:
        slack_api.wait_socket_connected()
        command = {
            "command": "/cmd", "text": "list", "user_id": "U1", "channel_id": "C1",
            "team_id": slack_api.team_id, "api_app_id": slack_api.app_id,
            "response_url": slack_api.response_url(), "trigger_id": "1.2.x",
        }  # fmt: skip
        ack = slack_api.send_envelope("slash_commands", command)
        assert ack["payload"] == {"text": "got list"}
        event = {
            "type": "app_mention",
            "user": "U1",
            "text": "<@UBOT1> hi",
            "ts": "5.6",
            "channel": "C1",
        }
        callback = {
            "type": "event_callback", "team_id": slack_api.team_id, "api_app_id": slack_api.app_id,
            "event": event, "event_id": "Ev1", "event_time": int(time.time()),
            "authorizations": [{"team_id": slack_api.team_id, "user_id": "UBOT1", "is_bot": True}],
        }  # fmt: skip
        ack = slack_api.send_envelope("events_api", callback, accepts_response_payload=False)
        assert set(ack) == {"envelope_id"}
        (said,) = slack_api.wait_for("chat.postMessage")
        assert said.body["channel"] == "C1" and said.body["thread_ts"] == "5.6"
        assert said.body["text"] == "heard <@UBOT1> hi"
    finally:
        connecting.join(timeout=10)
        handler.close()
    deadline = time.monotonic() + 10
    while slack_api.socket_connection_count() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slack_api.socket_connection_count() == 0
