"""Approve and Cancel on the requester's own prompt: exactly once, only by the requester,
only while the token is genuine and unexpired, and only while the role still holds."""

import json

from bot.state.approvals import issue_token
from tests.bot_process import find_button
from tests.commands.scenario import clock_of
from tests.e2e_fixtures import ALICE, MALLORY, OPS, session_id_of, texts_of, wait_until

DAVE = "U0DAVE"  # an operator only through the user group S0ONCALL


def test_restart_approved_by_requester_runs_exactly_once_and_is_recorded(scenario_factory):
    stack = scenario_factory(ngrok={"restart_delay": 0.1})  # not back at the first look
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"restart {sid}")
    assert "comes back with a *new* session id" in texts_of(prompt)
    approve = find_button(prompt, "ngrok_approve")
    result = stack.reply(stack.click(approve))
    assert result["text"] == f"ngrok accepted the restart of {sid}."  # not done yet
    record = stack.posted("chat.postMessage", predicate=lambda c: sid in json.dumps(c.body))[0]
    assert record.body["channel"] == OPS
    assert f"<@{ALICE}>" in texts_of(record.body)
    # A double click, a replayed payload: nothing more reaches ngrok.
    stack.click(approve)
    again = stack.reply(stack.click(approve))
    assert "already approved once" in texts_of(again)  # said before any ngrok call
    assert len(stack.action_posts(sid)) == 1
    post = stack.action_posts(sid)[0]
    assert post.path.endswith("/restart") and json.loads(post.body) == {}
    back = stack.posted("chat.postMessage", predicate=lambda c: "is back as" in json.dumps(c.body))
    new_id = stack.ngrok.session_ids()[0]
    assert new_id != sid and new_id in json.dumps(back[0].body)
    events = [r["event"] for r in stack.bot.audit_records() if r.get("session_id") == sid]
    assert events[:3] == ["requested", "approved", "executed"]


def test_cancel_and_foreign_clicks_never_reach_ngrok(stack):
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"restart {sid}")
    approve = find_button(prompt, "ngrok_approve")
    refusal = stack.reply(stack.click(approve, user=MALLORY))
    assert "Only the person who asked" in texts_of(refusal)
    assert "Cancelled" in texts_of(stack.reply(stack.click(find_button(prompt, "ngrok_cancel"))))
    late = stack.reply(stack.click(approve))
    assert "This restart was cancelled, so it will not run" in texts_of(late)
    assert stack.action_posts() == []


def test_cancel_after_approve_cancels_nothing(stack):
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"restart {sid}")
    stack.reply(stack.click(find_button(prompt, "ngrok_approve")))
    late = stack.reply(stack.click(find_button(prompt, "ngrok_cancel")))
    assert "nothing to cancel" in texts_of(late)
    assert late.get("replace_original") is False
    assert len(stack.action_posts(sid)) == 1
    assert "cancelled" not in [r["event"] for r in stack.bot.audit_records()]


def test_a_prompt_expires_after_its_ttl_on_the_bot_clock(stack):
    first, second = [
        s
        for s in stack.ngrok.session_ids()
        if stack.ngrok.session(s).get("os") == "linux"
        and stack.ngrok.session(s).get("transport") != "ssh"
    ][:2]
    prompts = [stack.ask(f"restart {sid}") for sid in (first, second)]
    clock = clock_of(stack)
    clock.advance(599)  # approval_ttl: 10m
    stack.reply(stack.click(find_button(prompts[0], "ngrok_approve")))
    assert len(stack.action_posts(first)) == 1
    clock.advance(1)
    late = stack.reply(stack.click(find_button(prompts[1], "ngrok_approve")))
    assert "expired" in texts_of(late).lower()
    assert late.get("replace_original") is True
    assert stack.action_posts(second) == []
    expired = [r for r in stack.bot.audit_records() if r["event"] == "expired"]
    assert [r["session_id"] for r in expired] == [second]


def test_a_token_signed_with_another_secret_is_refused(stack):
    sid = session_id_of("linux", stack.ngrok)
    forged, _ = issue_token(
        secret=b"not-the-bot-secret-0123456789", action="restart", targets=[sid],
        requester=ALICE, channel=OPS, thread_ts=None, ttl_seconds=600,
        epoch=stack.bot.deps.store.epoch(),
    )  # fmt: skip
    key = stack.click(
        {"action_id": "ngrok_approve", "text": {"type": "plain_text", "text": "A"}, "value": forged}
    )
    assert "not valid" in texts_of(stack.reply(key))
    assert stack.action_posts() == []


def test_update_then_restart_after_the_delay(stack):
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"update {sid}")
    assert "needs a restart at least 10 s later" in texts_of(prompt)
    stack.reply(stack.click(find_button(prompt, "ngrok_approve")))
    # The restart is scheduled UPDATE_RESTART_DELAY (0.3 s) later, past the drained pool.
    wait_until(lambda: len(stack.action_posts(sid)) == 2, what="update then restart")
    paths = [r.path.rsplit("/", 1)[1] for r in stack.action_posts(sid)]
    assert paths == ["update", "restart"]
    first, second = stack.action_posts(sid)
    assert second.at - first.at >= 0.25


def test_a_failed_post_may_have_been_applied_and_is_never_resent(stack):
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"restart {sid}")
    stack.ngrok.inject_fault("err_810", method="POST")
    result = stack.reply(stack.click(find_button(prompt, "ngrok_approve")))
    assert "may have been applied" in texts_of(result).lower()
    assert len(stack.action_posts(sid)) == 1


def test_a_role_removed_between_request_and_click_counts(stack):
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"restart {sid}", user=DAVE)  # operator through S0ONCALL
    approve = find_button(prompt, "ngrok_approve")
    stack.slack.set_usergroup("S0ONCALL", [])  # GROUP_CACHE_SECONDS=0 in the stack
    refused = stack.reply(stack.click(approve, user=DAVE))
    assert "no longer an operator" in texts_of(refused)
    assert stack.action_posts() == []
    assert stack.slack.calls_to("usergroups.users.list")
