"""Who may do what, end to end: two-person approval, roles through user groups, defaults
without a config, the audit trail, and exactly-once across two processes sharing Redis."""

from __future__ import annotations

import json
import signal
import time
from functools import partial

from tests.bot_process import BotProcess, SlackSender, buttons_in, find_button
from tests.e2e_fixtures import (
    ALICE,
    BOB,
    CAROL,
    MALLORY,
    OPS,
    THREAD,
    assert_one_post,
    at_once,
    session_id_of,
    texts_of,
    wait_until,
)

DAVE = "U0DAVE"  # an operator only through the user group S0ONCALL


def request_two_person_stop(stack, sid: str, *, user: str = ALICE) -> dict:
    """Asks for a stop (two-person by the default rules) and sends it for approval."""
    prompt = stack.ask(f"stop {sid}", user=user)
    assert "second person" in texts_of(prompt)
    assert not [b for b in buttons_in(prompt) if b["action_id"] == "ngrok_approve"]
    stack.reply(stack.click(find_button(prompt, "ngrok_ask_approval"), user=user))
    request = stack.posted("chat.postMessage", predicate=lambda c: sid in json.dumps(c.body))[0]
    assert request.body["channel"] == OPS
    return request.body


def test_two_person_stop_needs_someone_else(stack_factory):
    stack = stack_factory()
    sid = session_id_of("linux", stack.ngrok)
    request = request_two_person_stop(stack, sid)
    assert f"Approvers: <@{BOB}> <@{CAROL}>" in texts_of(request)  # they get pinged
    approve = find_button(request, "ngrok_tp_approve")
    own = stack.click(approve, user=ALICE, ephemeral=False)
    assert "someone else must approve" in texts_of(stack.reply(own))
    viewer = stack.click(approve, user=MALLORY, ephemeral=False)
    assert "Only approvers" in texts_of(stack.reply(viewer))
    time.sleep(0.3)
    assert stack.action_posts() == []
    stack.click(approve, user=BOB, ephemeral=False)
    wait_until(lambda: stack.action_posts(sid), what="the stop")
    done = stack.posted("chat.update", predicate=lambda c: "state_done" in json.dumps(c.body))[0]
    assert f"<@{BOB}>" in texts_of(done.body)
    assert sid not in stack.ngrok.session_ids()
    late = stack.click(approve, user=CAROL, ephemeral=False)
    assert "already" in texts_of(stack.reply(late))
    assert len(stack.action_posts()) == 1
    audit = [(r["event"], r.get("actor")) for r in stack.bot.audit_records()]
    assert ("approved", BOB) in audit and ("executed", BOB) in audit


def test_two_approvers_clicking_at_once_run_it_once(stack_factory):
    stack = stack_factory()
    sid = session_id_of("linux", stack.ngrok)
    approve = find_button(request_two_person_stop(stack, sid), "ngrok_tp_approve")
    at_once(*(partial(stack.click, approve, user=u, ephemeral=False) for u in (BOB, CAROL) * 2))
    assert_one_post(stack, sid)


def test_deny_and_withdraw_change_nothing(stack_factory):
    stack = stack_factory()
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
    denied = stack.posted("chat.update", predicate=lambda c: "state_denied" in json.dumps(c.body))
    assert f"<@{BOB}>" in texts_of(denied[0].body)
    assert "Reason: not now" in texts_of(denied[0].body)
    told = stack.posted("chat.postMessage", predicate=lambda c: c.body["channel"] == ALICE)
    assert "denied your request" in texts_of(told[0].body)
    later = stack.click(find_button(request, "ngrok_tp_approve"), user=CAROL, ephemeral=False)
    assert "already denied" in texts_of(stack.reply(later))
    assert stack.action_posts() == []


def test_a_role_removed_between_request_and_click_counts(stack_factory):
    stack = stack_factory()
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"restart {sid}", user=DAVE)  # operator through S0ONCALL
    approve = find_button(prompt, "ngrok_approve")
    stack.slack.set_usergroup("S0ONCALL", [])  # GROUP_CACHE_SECONDS=0 in the stack
    refused = stack.reply(stack.click(approve, user=DAVE))
    assert "no longer an operator" in texts_of(refused)
    time.sleep(0.3)
    assert stack.action_posts() == []
    assert stack.slack.calls_to("usergroups.users.list")


def test_without_a_config_everyone_lists_and_nobody_acts(stack_factory):
    stack = stack_factory(config=None)
    assert "ngrok agents online" in stack.ask("sessions", user=MALLORY)["text"]
    sid = session_id_of("linux", stack.ngrok)
    refusal = texts_of(stack.ask(f"restart {sid}", user=MALLORY))
    assert "BOT_CONFIG" in refusal and "roles.operator" in refusal
    assert stack.action_posts() == []


def test_audit_shows_recent_entries_to_operators_only(stack_factory):
    stack = stack_factory()
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"restart {sid}")
    stack.reply(stack.click(find_button(prompt, "ngrok_approve")))
    wait_until(lambda: stack.action_posts(sid), what="the restart")
    wait_until(
        lambda: any(r["event"] == "executed" for r in stack.bot.audit_records()), what="record"
    )
    audit = texts_of(stack.ask(f"audit 5 {sid}"))
    assert sid in audit and "restart" in audit
    assert "Only operators and approvers" in texts_of(stack.ask("audit", user=MALLORY))


def test_audit_channel_gets_every_record(stack_factory, tmp_path):
    from tests.e2e_fixtures import DEFAULT_CONFIG

    stack = stack_factory(config=DEFAULT_CONFIG + "audit_channel: C0AUDIT\n")
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"restart {sid}")
    stack.reply(stack.click(find_button(prompt, "ngrok_approve")))
    posts = stack.posted(
        "chat.postMessage", 3, predicate=lambda c: c.body.get("channel") == "C0AUDIT"
    )
    assert all(sid in p.body["text"] for p in posts)


def test_double_approve_sent_to_two_processes_sharing_redis(stack_factory, redis_url, tmp_path):
    stack = stack_factory(env={"REDIS_URL": redis_url})
    second = BotProcess({**stack.bot.env, "PORT": ""}, log_dir=tmp_path).start()
    try:
        sid = session_id_of("linux", stack.ngrok)
        approve = find_button(stack.ask(f"restart {sid}"), "ngrok_approve")
        senders = [stack.sender, SlackSender(second.events_url)]
        url = stack.slack.response_url()
        at_once(
            *(
                partial(sender.click, approve, user=ALICE, channel=OPS, response_url=url)
                for sender in senders * 3
            )
        )
        assert_one_post(stack, sid)
    finally:
        second.stop()


def test_socket_mode_worker_runs_the_whole_flow(stack_factory):
    stack = stack_factory(kind="worker")
    stack.slack.wait_socket_connected(timeout=30)
    sid = session_id_of("linux", stack.ngrok)
    url = stack.slack.response_url()
    payload = {
        "token": "x", "team_id": "T111", "channel_id": OPS, "user_id": ALICE, "command": "/ngrok",
        "text": f"restart {sid}", "api_app_id": "A111", "response_url": url, "trigger_id": "1.2",
    }  # fmt: skip
    ack = stack.slack.send_envelope("slash_commands", payload)
    assert ack["envelope_id"]
    prompt = stack.reply(url.rsplit("/", 1)[1])
    approve = find_button(prompt, "ngrok_approve")
    click_url = stack.slack.response_url()
    action = {key: approve[key] for key in ("action_id", "block_id", "text", "value", "type")}
    click = stack.sender.block_actions(action, user=ALICE, channel=OPS, response_url=click_url)
    stack.slack.send_envelope("interactive", click)
    stack.reply(click_url.rsplit("/", 1)[1])
    assert_one_post(stack, sid, settle=0.3)
    record = stack.posted("chat.postMessage", predicate=lambda c: sid in json.dumps(c.body))
    assert record[0].body["channel"] == OPS
    stack.bot.stop(signal.SIGTERM)  # what a platform sends: a clean exit, jobs drained
    assert stack.bot.process.returncode == 0


def test_mention_retries_from_slack_run_once(stack_factory):
    stack = stack_factory()
    body = {
        "token": "x", "team_id": "T111", "api_app_id": "A111", "type": "event_callback",
        "event_id": "Ev0RETRY1", "event_time": int(time.time()),
        "event": {"type": "app_mention", "user": ALICE, "text": "<@UBOT1> sessions",
                  "ts": "1700000003.000100", "channel": OPS, "thread_ts": THREAD},
    }  # fmt: skip
    for _ in range(3):
        assert stack.sender.post(json.dumps(body), "application/json").status_code == 200
    stack.posted("chat.postMessage")
    time.sleep(0.5)
    assert len(stack.slack.calls_to("chat.postMessage")) == 1


def test_rules_match_sessions_by_metadata(stack_factory):
    config = f"""
roles:
  operator: [{ALICE}]
  approver: [{BOB}]
rules:
  - action: restart
    approval: two-person
    match: {{metadata_contains: ['"env": "prod"']}}
  - action: restart
    approval: self
"""
    stack = stack_factory(config=config)
    prod = stack.ngrok.add_session(os="linux", metadata='{"env": "prod", "host": "web-1"}')
    dev = stack.ngrok.add_session(os="linux", metadata='{"env": "dev", "host": "web-2"}')
    assert "second person" in texts_of(stack.ask(f"restart {prod['id']}"))
    assert find_button(stack.ask(f"restart {dev['id']}"), "ngrok_approve")


def test_each_channel_uses_its_own_ngrok_account(stack_factory, ngrok_api_factory):
    staging = ngrok_api_factory(sessions=5, api_key="2StagingKeyAbcdefghijklmnopq_0123456789")
    config = f"""
roles:
  operator: [{ALICE}]
accounts:
  prod: {{api_key_env: NGROK_API_KEY}}
  staging: {{api_key_env: NGROK_STAGING_KEY, api_url: "{staging.base_url}"}}
default_account: prod
channels:
  {OPS}: {{account: prod, actions: true}}
  C0STAGING: {{account: staging, actions: true}}
"""
    stack = stack_factory(
        config=config, env={"NGROK_STAGING_KEY": "2StagingKeyAbcdefghijklmnopq_0123456789"}
    )
    stack.secrets.append("2StagingKeyAbcdefghijklmnopq_0123456789")
    assert "30 ngrok agents online" in stack.ask("sessions")["text"]
    assert "5 ngrok agents online" in stack.ask("sessions", channel="C0STAGING")["text"]
    assert staging.log() and all(r.path.startswith("/tunnel_sessions") for r in staging.log())
    sid = session_id_of("linux", stack.ngrok)
    stack.reply(stack.click(find_button(stack.ask(f"restart {sid}"), "ngrok_approve")))
    wait_until(lambda: stack.action_posts(sid), what="the restart")
    wait_until(lambda: sid in texts_of(stack.ask("audit")), what="the record in prod's audit")
    assert sid not in texts_of(stack.ask("audit", channel="C0STAGING"))


def test_an_unapproved_request_expires_and_says_so(stack_factory):
    from tests.e2e_fixtures import DEFAULT_CONFIG

    stack = stack_factory(config=DEFAULT_CONFIG.replace("approval_ttl: 10m", "approval_ttl: 10s"))
    sid = session_id_of("linux", stack.ngrok)
    request = request_two_person_stop(stack, sid)
    stack.posted(
        "chat.update", predicate=lambda c: "state_expired" in json.dumps(c.body), timeout=25
    )
    late = stack.click(find_button(request, "ngrok_tp_approve"), user=BOB, ephemeral=False)
    assert "expired" in texts_of(stack.reply(late)).lower()
    assert stack.action_posts() == []
    assert "expired" in [r["event"] for r in stack.bot.audit_records()]


def test_a_late_click_expires_a_request_whose_timer_died_with_its_process(stack_factory):
    from tests.e2e_fixtures import DEFAULT_CONFIG

    stack = stack_factory(config=DEFAULT_CONFIG.replace("approval_ttl: 10m", "approval_ttl: 10s"))
    sid = session_id_of("linux", stack.ngrok)
    request = request_two_person_stop(stack, sid)
    stack.bot.stop()  # the expiry timer goes with the process; the state stays in the store
    stack.bot.start()
    time.sleep(10.5)
    late = stack.click(find_button(request, "ngrok_tp_approve"), user=BOB, ephemeral=False)
    assert "expired" in texts_of(stack.reply(late)).lower()
    stack.posted("chat.update", predicate=lambda c: "state_expired" in json.dumps(c.body))
    assert stack.action_posts() == []


def test_a_request_nobody_can_see_is_withdrawn(stack_factory):
    stack = stack_factory()
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"stop {sid}")
    stack.slack.fail_next("chat.postMessage", status=200, error="not_in_channel", retry_after=None)
    key = stack.click(find_button(prompt, "ngrok_ask_approval"))
    replaced = stack.reply(key)
    assert "nothing was requested" in texts_of(replaced)
    invite = stack.posted("chat.postEphemeral")[0]
    assert "/invite @ngrok-ops" in invite.body["text"]
    assert stack.action_posts() == []


def test_an_update_needs_the_approval_its_restart_needs(stack_factory):
    config = f"""
roles:
  operator: [{ALICE}]
  approver: [{BOB}]
rules:
  - action: restart
    approval: two-person
  - action: update
    approval: self
"""
    stack = stack_factory(config=config)
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"update {sid}")
    assert "second person" in texts_of(prompt)
    assert not [b for b in buttons_in(prompt) if b["action_id"] == "ngrok_approve"]


def test_two_gunicorn_workers_sharing_the_sqlite_file_run_an_approval_once(stack_factory):
    stack = stack_factory(env={"WEB_CONCURRENCY": "2"})
    wait_until(lambda: stack.bot.stderr().count("Booting worker") >= 2, what="two workers")
    sid = session_id_of("linux", stack.ngrok)
    approve = find_button(stack.ask(f"restart {sid}"), "ngrok_approve")
    at_once(*(partial(stack.click, approve) for _ in range(6)))
    assert_one_post(stack, sid)
