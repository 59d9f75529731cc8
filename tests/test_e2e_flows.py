"""The bot as a real process (Procfile `web:`), driven by signed Slack requests, talking real
HTTP to the local ngrok and Slack stand-ins. Every test ends with a scan for leaked secrets."""

from __future__ import annotations

import json
import time

import pytest

from bot.slack.blocks import decode_button_value
from bot.state.approvals import issue_token
from tests.bot_process import buttons_in, find_button
from tests.e2e_fixtures import (
    ALICE,
    MALLORY,
    OPS,
    OTHER,
    THREAD,
    session_id_of,
    texts_of,
    wait_until,
)

BUTTON_KEY = b"e2e-approval-secret-0123456789abcdef"  # APPROVAL_SECRET in tests/e2e_fixtures.py


@pytest.fixture
def stack(stack_factory):
    return stack_factory()  # the factory scans for leaked secrets after each test


def test_slash_sessions_lists_the_fleet_escaped_with_working_buttons(stack):
    body = stack.ask("sessions")
    text = texts_of(body)
    assert "30 ngrok agents online" in body["text"]
    assert "<!channel>" not in text and "<@U123>" not in text
    newest = stack.ngrok.session_ids()[0]
    assert newest in text
    details = [b for b in buttons_in(body) if b["action_id"] == "ngrok_details"]
    assert details, "each session row offers Details"
    value = decode_button_value(details[0]["value"], key=BUTTON_KEY)
    assert value.session_id == newest and value.channel_id == OPS
    key = stack.click(details[0])
    detail = stack.reply(key)
    assert f"ngrok agent {newest}" in detail["text"]


def test_older_button_pages_through_the_fleet(stack):
    first = stack.ask("sessions limit=10")
    older = find_button(first, "ngrok_page")
    shown_first = {s for s in stack.ngrok.session_ids()[:10]}
    assert all(s in texts_of(first) for s in shown_first)
    key = stack.click(older)
    second = stack.reply(key)
    next_ids = stack.ngrok.session_ids()[10:20]
    assert all(s in texts_of(second) for s in next_ids)
    assert not any(s in texts_of(second) for s in shown_first)
    reply = stack.slack.calls_to("response_url", key=key)[0].body
    assert reply.get("replace_original") is True


def test_filters_reach_the_api_as_cel(stack):
    body = stack.ask("sessions os=windows")
    lists = [r for r in stack.ngrok.log() if r.path == "/tunnel_sessions"]
    assert any('obj.os == "windows"' in (r.query.get("filter") or [""])[0] for r in lists)
    windows = [
        s for s in stack.ngrok.session_ids() if stack.ngrok.session(s).get("os") == "windows"
    ]
    assert f"{len(windows)} ngrok agents online" in body["text"]


def test_restart_approved_by_requester_runs_exactly_once_and_is_recorded(stack):
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"restart {sid}")
    assert "comes back with a *new* session id" in texts_of(prompt)
    approve = find_button(prompt, "ngrok_approve")
    key = stack.click(approve)
    result = stack.reply(key)
    assert "Restarted" in texts_of(result) or "restart" in texts_of(result).lower()
    record = stack.posted("chat.postMessage", predicate=lambda c: sid in json.dumps(c.body))[0]
    assert record.body["channel"] == OPS
    assert f"<@{ALICE}>" in texts_of(record.body)
    # A double click, a replayed payload: nothing more reaches ngrok.
    stack.click(approve)
    again = stack.click(approve)
    stack.reply(again)
    assert len(stack.action_posts(sid)) == 1
    post = stack.action_posts(sid)[0]
    assert post.path.endswith("/restart") and json.loads(post.body) == {}
    back = stack.posted("chat.postMessage", predicate=lambda c: "is back as" in json.dumps(c.body))[
        0
    ]
    new_id = stack.ngrok.session_ids()[0]
    assert new_id != sid and new_id in json.dumps(back.body)
    events = [r["event"] for r in stack.bot.audit_records() if r.get("session_id") == sid]
    assert events[:3] == ["requested", "approved", "executed"]


def test_cancel_and_foreign_clicks_never_reach_ngrok(stack):
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"restart {sid}")
    approve = find_button(prompt, "ngrok_approve")
    foreign = stack.click(approve, user=MALLORY)
    refusal = stack.reply(foreign)
    assert "Only the person who asked" in texts_of(refusal)
    cancel = stack.click(find_button(prompt, "ngrok_cancel"))
    assert "Cancelled" in texts_of(stack.reply(cancel))
    late = stack.click(approve)
    assert "already" in texts_of(stack.reply(late)).lower()
    time.sleep(0.3)
    assert stack.action_posts() == []


def test_expired_and_forged_tokens_are_refused(stack):
    sid = session_id_of("linux", stack.ngrok)
    secret = stack.bot.env["APPROVAL_SECRET"].encode()
    old, _ = issue_token(
        secret=secret, action="restart", targets=[sid], requester=ALICE, channel=OPS,
        thread_ts=None, ttl_seconds=600, now=time.time() - 3600, epoch=None,
    )  # fmt: skip
    key = stack.click(
        {"action_id": "ngrok_approve", "text": {"type": "plain_text", "text": "A"}, "value": old}
    )
    assert "expired" in texts_of(stack.reply(key)).lower()
    forged, _ = issue_token(
        secret=b"not-the-bot-secret-0123456789", action="restart", targets=[sid],
        requester=ALICE, channel=OPS, thread_ts=None, ttl_seconds=600, epoch=None,
    )  # fmt: skip
    key = stack.click(
        {"action_id": "ngrok_approve", "text": {"type": "plain_text", "text": "A"}, "value": forged}
    )
    assert "not valid" in texts_of(stack.reply(key))
    time.sleep(0.3)
    assert stack.action_posts() == []


def test_windows_restart_is_not_offered_and_refused_with_the_reason(stack):
    sid = session_id_of("windows", stack.ngrok)
    detail = stack.ask(f"session {sid}")
    assert "Windows agents cannot restart themselves" in texts_of(detail)
    refusal = stack.ask(f"restart {sid}")
    assert "Windows" in texts_of(refusal)
    assert not [b for b in buttons_in(refusal) if b["action_id"] == "ngrok_approve"]
    assert stack.action_posts() == []


def test_update_then_restart_after_the_delay(stack):
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"update {sid}")
    assert "10 s" in texts_of(prompt) or "restart" in texts_of(prompt).lower()
    stack.reply(stack.click(find_button(prompt, "ngrok_approve")))
    wait_until(lambda: len(stack.action_posts(sid)) == 2, what="update then restart")
    paths = [r.path.rsplit("/", 1)[1] for r in stack.action_posts(sid)]
    assert paths == ["update", "restart"]
    first, second = stack.action_posts(sid)
    assert second.at - first.at >= 0.25  # UPDATE_RESTART_DELAY=0.3 in the stack


def test_unknown_commands_and_bad_ids_get_one_sentence_in_the_ack(stack):
    response, _ = stack.slash("frobnicate ts_1")
    body = response.json()
    assert "frobnicate" in body["text"]
    response, _ = stack.slash("stop ts_nope")
    assert "session id" in response.json()["text"].lower()
    assert "Traceback" not in stack.bot.stderr()


def test_help_shows_only_what_the_user_may_run(stack):
    alice = texts_of(stack.ask("help"))
    mallory = texts_of(stack.ask("help", user=MALLORY))
    assert "restart &lt;session-id | host" in alice
    assert "restart &lt;session-id" not in mallory and "sessions" in mallory


def test_actions_are_refused_in_a_channel_without_them(stack):
    sid = session_id_of("linux", stack.ngrok)
    refusal = stack.ask(f"restart {sid}", channel=OTHER)
    assert OTHER in texts_of(refusal)
    assert not [b for b in buttons_in(refusal) if b["action_id"] == "ngrok_approve"]


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
    approve = find_button(prompt.body, "ngrok_approve")
    stack.reply(stack.click(approve))
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
    assert "ngrok agents online" in post.body["text"]


def test_unsigned_wrongly_signed_and_stale_requests_get_401(stack):
    body = stack.sender.command_body(
        f"restart {stack.ngrok.session_ids()[0]}", user=ALICE, channel=OPS,
        response_url=stack.slack.response_url(),
    )  # fmt: skip
    unsigned = stack.sender.post(body, "application/x-www-form-urlencoded", sign=False)
    stale = stack.sender.post(
        body, "application/x-www-form-urlencoded", timestamp=int(time.time()) - 400
    )
    headers = {"content-type": "application/x-www-form-urlencoded"}
    ts = str(int(time.time()))
    headers |= {"x-slack-request-timestamp": ts, "x-slack-signature": "v0=" + "0" * 64}
    wrong = stack.sender.http.post(stack.sender.url, content=body.encode(), headers=headers)
    assert [unsigned.status_code, stale.status_code, wrong.status_code] == [401, 401, 401]
    time.sleep(0.3)
    assert stack.slack.calls_to("response_url") == []
    assert [r for r in stack.ngrok.log() if r.path.startswith("/tunnel_sessions")] == []


def test_ngrok_failures_become_one_sentence(stack):
    sid = session_id_of("linux", stack.ngrok)
    gone = stack.ask("session ts_" + "A" * 27)
    assert "is not online and this bot has never seen it" in texts_of(gone)
    prompt = stack.ask(f"restart {sid}")
    stack.ngrok.inject_fault("err_810", method="POST")
    result = stack.reply(stack.click(find_button(prompt, "ngrok_approve")))
    assert "may have been applied" in texts_of(result).lower()
    assert len(stack.action_posts(sid)) == 1  # never re-sent


def test_identical_lists_share_one_scan_until_an_action(stack):
    for _ in range(3):
        stack.ask("sessions")
    scans = [r for r in stack.ngrok.log() if r.path == "/tunnel_sessions"]
    assert len(scans) == 1
    sid = session_id_of("linux", stack.ngrok)
    stack.reply(stack.click(find_button(stack.ask(f"restart {sid}"), "ngrok_approve")))
    wait_until(lambda: stack.action_posts(sid), what="the restart")
    body = stack.ask("sessions")
    assert sid not in texts_of(body)


def test_a_failed_response_url_reply_is_noticed_and_sent_another_way(stack):
    stack.slack.fail_next("response_url", status=404, error="used_url", retry_after=None)
    _, key = stack.slash("help")
    stack.slack.wait_for("response_url", key=key)
    fallback = stack.posted("chat.postEphemeral")[0]
    assert fallback.body["user"] == ALICE and "ngrok-ops commands" in fallback.body["text"]
    wait_until(lambda: "response_url reply failed with HTTP 404" in stack.bot.stderr())


def test_slack_rate_limits_are_retried_after_retry_after(stack):
    stack.slack.fail_next("chat.postMessage", status=429, retry_after=1)
    stack.sender.mention("<@UBOT1> sessions", user=ALICE, channel=OPS, ts="1700000004.000100")
    attempts = stack.slack.wait_for("chat.postMessage", 2, timeout=20)
    assert [a.status for a in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 1.0


def test_cancel_after_approve_cancels_nothing(stack):
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"restart {sid}")
    stack.reply(stack.click(find_button(prompt, "ngrok_approve")))
    late = stack.reply(stack.click(find_button(prompt, "ngrok_cancel")))
    assert "nothing to cancel" in texts_of(late)
    assert late.get("replace_original") is False
    assert len(stack.action_posts(sid)) == 1
    assert "cancelled" not in [r["event"] for r in stack.bot.audit_records()]


def test_the_restart_button_in_a_list_row_opens_the_prompt(stack):
    listing = stack.ask("sessions limit=5")
    row = next(
        block for block in listing["blocks"]
        for element in block.get("elements", []) if element.get("type") == "overflow"
    )  # fmt: skip
    overflow = next(e for e in row["elements"] if e["type"] == "overflow")
    restart = next(o for o in overflow["options"] if o["text"]["text"].startswith("Restart"))
    url = stack.slack.response_url()
    action = {
        "action_id": overflow["action_id"], "block_id": row["block_id"], "type": "overflow",
        "selected_option": restart,
    }  # fmt: skip
    payload = stack.sender.block_actions(action, user=ALICE, channel=OPS, response_url=url)
    assert stack.sender.interactive(payload).status_code == 200
    prompt = stack.reply(url.rsplit("/", 1)[1])
    assert find_button(prompt, "ngrok_approve")
    assert decode_button_value(restart["value"], key=BUTTON_KEY).session_id in texts_of(prompt)
