"""The Bolt-facing layer: acks, signatures, mentions, the message shortcut, Slack's retries,
and replies that fail on the way back to Slack."""

import json
import time

from tests.bot_process import find_button
from tests.e2e_fixtures import ALICE, OPS, THREAD, session_id_of


def test_unknown_commands_and_bad_ids_get_one_sentence_in_the_ack(stack):
    response, _ = stack.slash("frobnicate ts_1")
    assert "frobnicate" in response.json()["text"]
    response, _ = stack.slash("stop ts_1")  # shaped like an id, too short to be one
    assert "session id" in response.json()["text"].lower()
    assert stack.slack.calls_to("response_url") == []
    assert "Traceback" not in stack.bot.stderr()


def test_unsigned_wrongly_signed_and_stale_requests_get_401(stack):
    sender = stack.sender
    body = sender.command_body(
        f"restart {stack.ngrok.session_ids()[0]}", user=ALICE, channel=OPS,
        response_url=stack.slack.response_url(),
    )  # fmt: skip
    form = "application/x-www-form-urlencoded"
    unsigned = sender.post(body, form, sign=False)
    stale = sender.post(body, form, timestamp=int(time.time()) - 400)
    wrong = sender.send(body, {**sender.headers(body, form), "x-slack-signature": "v0=" + "0" * 64})
    signed = sender.post(body, form)
    assert [unsigned.status_code, stale.status_code, wrong.status_code] == [401, 401, 401]
    assert signed.status_code == 200  # the same body, signed: the refusals were the signature
    assert len(stack.slack.calls_to("response_url")) == 1


def test_mention_in_a_thread_replies_in_the_thread(stack):
    response = stack.sender.mention(
        "<@UBOT1> sessions region=us", user=ALICE, channel=OPS, ts="1700000001.000300",
        thread_ts=THREAD,
    )  # fmt: skip
    assert response.status_code == 200
    post = stack.posted("chat.postMessage")[0]
    assert post.body["thread_ts"] == THREAD and post.body["channel"] == OPS
    sid = session_id_of("linux", stack.ngrok)
    stack.sender.mention(
        f"<@UBOT1> restart {sid}", user=ALICE, channel=OPS, ts="1700000001.000400",
        thread_ts=THREAD,
    )  # fmt: skip
    prompt = stack.posted("chat.postEphemeral")[0]
    assert prompt.body["thread_ts"] == THREAD and prompt.body["user"] == ALICE
    stack.reply(stack.click(find_button(prompt.body, "ngrok_approve")))
    record = stack.posted("chat.postMessage", 2)[1]
    assert record.body["thread_ts"] == THREAD
    assert len(stack.action_posts(sid)) == 1


def test_message_shortcut_posts_the_list_into_the_thread(stack):
    url = stack.slack.response_url()
    response = stack.sender.message_shortcut(
        user=ALICE, channel=OPS, message_ts="1700000002.000100", thread_ts=THREAD, response_url=url
    )
    assert response.status_code == 200
    post = stack.posted("chat.postMessage")[0]
    assert post.body["thread_ts"] == THREAD
    assert post.body["text"] == "Looking up agents…"  # the placeholder, then the list in it
    update = stack.posted("chat.update")[0]
    assert update.body["ts"] == post.response["ts"]
    assert "ngrok agents online" in update.body["text"]


def test_mention_retries_from_slack_run_once(stack):
    body = {
        "token": "x", "team_id": "T111", "api_app_id": "A111", "type": "event_callback",
        "event_id": "Ev0RETRY1", "event_time": int(time.time()),
        "event": {"type": "app_mention", "user": ALICE, "text": "<@UBOT1> sessions",
                  "ts": "1700000003.000100", "channel": OPS, "thread_ts": THREAD},
    }  # fmt: skip
    for _ in range(3):
        assert stack.sender.post(json.dumps(body), "application/json").status_code == 200
    assert len(stack.slack.calls_to("chat.postMessage")) == 1


def test_a_failed_response_url_reply_is_noticed_and_sent_another_way(stack):
    stack.slack.fail_next("response_url", status=404, error="used_url", retry_after=None)
    _, key = stack.slash("help")
    assert [c.status for c in stack.slack.calls_to("response_url", key=key)] == [404]
    fallback = stack.posted("chat.postEphemeral")[0]
    assert fallback.body["user"] == ALICE and "ngrok-ops commands" in fallback.body["text"]
    assert "response_url reply failed with HTTP 404" in stack.bot.stderr()


def test_slack_rate_limits_are_retried_after_retry_after(stack):
    stack.slack.fail_next("chat.postMessage", status=429, retry_after=1)
    stack.sender.mention("<@UBOT1> sessions", user=ALICE, channel=OPS, ts="1700000004.000100")
    attempts = stack.slack.calls_to("chat.postMessage")
    assert [a.status for a in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 1.0
