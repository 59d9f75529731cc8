"""Issue 9, end to end against the Procfile `web:` process: forged button channels, approvals
replayed after Redis lost its data, requesters who lost their role, replayed slash commands."""

from __future__ import annotations

import json
import time

import pytest
import redis

from tests.bot_process import buttons_in, find_button
from tests.e2e_fixtures import (
    ALICE,
    BOB,
    OPS,
    OTHER,
    assert_one_post,
    session_id_of,
    texts_of,
    wait_until,
)

DAVE = "U0DAVE"  # an operator only through the user group S0ONCALL


@pytest.fixture
def stack(stack_factory):
    return stack_factory()  # the factory scans for leaked secrets after each test


def forged(button: dict, **changes: str) -> dict:
    """The button with its value rewritten the way an attacker would: plain JSON, no MAC."""
    value = {"op": "restart", "id": "", "ch": OPS, **changes}
    return {**button, "value": json.dumps(value, separators=(",", ":"))}


def test_a_forged_button_claiming_another_channel_is_refused(stack):
    """From OTHER (actions: false), a hand-made value claiming OPS must not open a prompt."""
    sid = session_id_of("linux", stack.ngrok)
    listed = stack.ask("sessions", channel=OTHER)
    select = next(b for b in listed["blocks"] if b.get("block_id") == "pick")["elements"][0]
    # The list's "open an agent" menu, as a button carrying a hand-made value.
    details = {"type": "button", "action_id": select["action_id"], "value": "",
               "text": {"type": "plain_text", "text": "Details"}}  # fmt: skip
    reply = stack.reply(stack.click(forged(details, op="restart", id=sid), channel=OTHER))
    assert not [b for b in buttons_in(reply) if b["action_id"] == "ngrok_approve"]
    assert "not valid here" in texts_of(reply)
    shown = stack.reply(stack.click(forged(details, op="details", id=sid), channel=OTHER))
    assert f"ngrok agent {sid}" not in shown.get("text", "")
    assert stack.action_posts() == []


def test_a_genuine_button_clicked_from_another_channel_is_refused(stack):
    """A real (signed) button from OPS, replayed in a payload from OTHER, is refused and
    logged: the signed origin and the claimed channel differ."""
    sid = session_id_of("linux", stack.ngrok)
    detail = stack.ask(f"session {sid}")
    restart = find_button(detail, "ngrok_request", text="Restart…")
    reply = stack.reply(stack.click(restart, channel=OTHER))
    assert not [b for b in buttons_in(reply) if b["action_id"] == "ngrok_approve"]
    assert "another channel" in texts_of(reply)
    wait_until(lambda: "was clicked in 'C0OTHER'" in stack.bot.stderr(), what="the log line")
    # The same button from its own channel still works.
    prompt = stack.reply(stack.click(restart, channel=OPS))
    assert find_button(prompt, "ngrok_approve")


def test_a_used_approval_does_not_run_again_after_redis_lost_its_data(stack_factory, redis_url):
    # An update keeps the session id (its finishing restart is far away), so the replay
    # reaches the approval check instead of "no longer online".
    stack = stack_factory(env={"REDIS_URL": redis_url, "UPDATE_RESTART_DELAY": "600"})
    sid = session_id_of("linux", stack.ngrok)
    approve = find_button(stack.ask(f"update {sid}"), "ngrok_approve")
    stack.reply(stack.click(approve))
    assert_one_post(stack, sid, settle=0.2)
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushall()  # what a restart of a Redis without persistence leaves behind
    finally:
        client.close()
    again = stack.reply(stack.click(approve))
    assert "state was reset" in texts_of(again)
    time.sleep(0.5)
    assert len(stack.action_posts(sid)) == 1


def test_a_requester_who_lost_the_operator_role_does_not_get_a_request_run(stack):
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"stop {sid}", user=DAVE)  # stop is two-person in DEFAULT_CONFIG
    stack.reply(stack.click(find_button(prompt, "ngrok_ask_approval"), user=DAVE))
    request = stack.posted("chat.postMessage", predicate=lambda c: sid in json.dumps(c.body))[0]
    stack.slack.set_usergroup("S0ONCALL", [])  # DAVE is no operator any more
    approve = find_button(request.body, "ngrok_tp_approve")
    refused = stack.reply(stack.click(approve, user=BOB, ephemeral=False))
    assert f"({DAVE}) is no longer an operator" in texts_of(refused)
    time.sleep(0.3)
    assert stack.action_posts() == []
    wait_until(
        lambda: any(
            r["event"] == "refused" and r.get("requester") == DAVE
            for r in stack.bot.audit_records()
        ),
        what="the refusal in the audit",
    )


def test_a_replayed_slash_command_runs_once(stack):
    url = stack.slack.response_url()
    body = stack.sender.command_body("sessions", user=ALICE, channel=OPS, response_url=url)
    for _ in range(3):
        assert stack.sender.post(body, "application/x-www-form-urlencoded").status_code == 200
    key = url.rsplit("/", 1)[1]
    stack.reply(key)
    time.sleep(0.5)
    assert len(stack.slack.calls_to("response_url", key=key)) == 1


def test_a_role_slack_cannot_confirm_is_refused_with_that_reason(stack_factory):
    stack = stack_factory(env={"GROUP_STALE_SECONDS": "0"})
    sid = session_id_of("linux", stack.ngrok)
    stack.slack.fail_next(
        "usergroups.users.list", status=200, error="fatal_error", retry_after=None
    )
    refused = stack.ask(f"restart {sid}", user=DAVE)  # DAVE is an operator only via S0ONCALL
    assert "Slack could not confirm your role" in texts_of(refused)
    assert not [b for b in buttons_in(refused) if b["action_id"] == "ngrok_approve"]
