"""Two-person approval: a public request that someone else approves or denies, once; it
expires on the bot's clock, and is withdrawn when nobody could see it."""

import json
from functools import partial

from bot.state.approvals import verify_token
from commands.approval import expire_request
from tests.bot_process import buttons_in, find_button
from tests.commands.scenario import clock_of, deps_of
from tests.e2e_fixtures import ALICE, BOB, CAROL, MALLORY, OPS, at_once, session_id_of, texts_of


def request_two_person_stop(stack, sid: str, *, user: str = ALICE) -> dict:
    """Asks for a stop (two-person by the default rules) and sends it for approval."""
    prompt = stack.ask(f"stop {sid}", user=user)
    assert "second person" in texts_of(prompt)
    assert not [b for b in buttons_in(prompt) if b["action_id"] == "ngrok_approve"]
    stack.reply(stack.click(find_button(prompt, "ngrok_ask_approval"), user=user))
    request = stack.posted("chat.postMessage", predicate=lambda c: sid in json.dumps(c.body))[0]
    assert request.body["channel"] == OPS
    return request.body


def state_updates(stack, state: str) -> list:
    return [
        c for c in stack.slack.calls_to("chat.update") if f"state_{state}" in json.dumps(c.body)
    ]


def test_two_person_stop_needs_someone_else(stack):
    sid = session_id_of("linux", stack.ngrok)
    request = request_two_person_stop(stack, sid)
    assert f"Approvers: <@{BOB}> <@{CAROL}>" in texts_of(request)  # they get pinged
    approve = find_button(request, "ngrok_tp_approve")
    own = stack.click(approve, user=ALICE, ephemeral=False)
    assert "someone else must approve" in texts_of(stack.reply(own))
    viewer = stack.click(approve, user=MALLORY, ephemeral=False)
    assert "Only approvers" in texts_of(stack.reply(viewer))
    assert stack.action_posts() == []
    stack.click(approve, user=BOB, ephemeral=False)
    assert len(stack.action_posts(sid)) == 1
    (done,) = state_updates(stack, "done")
    assert f"<@{BOB}>" in texts_of(done.body)
    assert sid not in stack.ngrok.session_ids()
    late = stack.click(approve, user=CAROL, ephemeral=False)
    assert "already" in texts_of(stack.reply(late))
    assert len(stack.action_posts()) == 1
    audit = [(r["event"], r.get("actor")) for r in stack.bot.audit_records()]
    assert ("approved", BOB) in audit and ("executed", BOB) in audit


def test_two_approvers_clicking_at_once_run_it_once(stack):
    sid = session_id_of("linux", stack.ngrok)
    approve = find_button(request_two_person_stop(stack, sid), "ngrok_tp_approve")
    at_once(*(partial(stack.click, approve, user=u, ephemeral=False) for u in (BOB, CAROL) * 2))
    assert len(stack.action_posts(sid)) == 1
    assert len(state_updates(stack, "done")) == 1


def test_deny_and_withdraw_change_nothing(stack):
    sid = session_id_of("linux", stack.ngrok)
    request = request_two_person_stop(stack, sid)
    stack.click(find_button(request, "ngrok_tp_deny"), user=BOB, ephemeral=False)
    view = stack.slack.wait_for("views.open")[0].body["view"]  # the reason modal
    reason = {"reason": {"reason": {"type": "plain_text_input", "value": "not now"}}}
    submission = {
        "type": "view_submission", "user": {"id": BOB, "team_id": "T111"}, "api_app_id": "A111",
        "team": {"id": "T111"}, "view": {**view, "id": "V1", "state": {"values": reason}},
    }  # fmt: skip
    assert stack.sender.interactive(submission).status_code == 200
    (denied,) = state_updates(stack, "denied")
    assert f"<@{BOB}>" in texts_of(denied.body)
    assert "Reason: not now" in texts_of(denied.body)
    later = stack.click(find_button(request, "ngrok_tp_approve"), user=CAROL, ephemeral=False)
    assert "already denied" in texts_of(stack.reply(later))
    assert stack.action_posts() == []


def test_an_unapproved_request_expires_and_says_so(stack):
    sid = session_id_of("linux", stack.ngrok)
    request = request_two_person_stop(stack, sid)
    approve = find_button(request, "ngrok_tp_approve")
    deps = deps_of(stack)
    clock_of(stack).advance(600)  # approval_ttl: 10m
    claims = verify_token(approve["value"], secret=deps.settings.approval_secret, now=0)
    expire_request(deps, claims.request_id)  # what the expiry task, due now, runs
    assert len(state_updates(stack, "expired")) == 1
    late = stack.click(approve, user=BOB, ephemeral=False)
    assert "expired" in texts_of(stack.reply(late)).lower()
    assert len(state_updates(stack, "expired")) == 1  # the late click edits nothing again
    assert stack.action_posts() == []
    assert [r["event"] for r in stack.bot.audit_records()].count("expired") == 1


def test_a_late_click_expires_a_request_whose_expiry_task_never_ran(stack):
    """The expiry task can die with its process; the store still holds the request."""
    sid = session_id_of("linux", stack.ngrok)
    request = request_two_person_stop(stack, sid)
    clock = clock_of(stack)
    clock.advance(599)
    assert state_updates(stack, "expired") == []
    clock.advance(1)
    late = stack.click(find_button(request, "ngrok_tp_approve"), user=BOB, ephemeral=False)
    assert "expired" in texts_of(stack.reply(late)).lower()
    assert len(state_updates(stack, "expired")) == 1
    assert stack.action_posts() == []


def test_a_request_nobody_can_see_is_withdrawn(stack):
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"stop {sid}")
    stack.slack.fail_next("chat.postMessage", status=200, error="not_in_channel", retry_after=None)
    replaced = stack.reply(stack.click(find_button(prompt, "ngrok_ask_approval")))
    assert "nothing was requested" in texts_of(replaced)
    invite = stack.posted("chat.postEphemeral")[0]
    assert "/invite @ngrok-ops" in invite.body["text"]
    assert stack.action_posts() == []
