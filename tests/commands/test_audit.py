"""`/ngrok audit` and the audit channel; each channel's records stay with its account."""

from tests.bot_process import find_button
from tests.e2e_fixtures import ALICE, DEFAULT_CONFIG, MALLORY, OPS, session_id_of, texts_of


def restart(stack, sid: str) -> None:
    stack.reply(stack.click(find_button(stack.ask(f"restart {sid}"), "ngrok_approve")))
    assert len(stack.action_posts(sid)) == 1


def test_audit_shows_recent_entries_to_operators_only(stack):
    sid = session_id_of("linux", stack.ngrok)
    restart(stack, sid)
    assert any(r["event"] == "executed" for r in stack.bot.audit_records())
    audit = texts_of(stack.ask(f"audit 5 {sid}"))
    assert sid in audit and "restart" in audit
    assert "Only operators and approvers" in texts_of(stack.ask("audit", user=MALLORY))


def test_audit_channel_gets_every_record(scenario_factory):
    stack = scenario_factory(config=DEFAULT_CONFIG + "audit_channel: C0AUDIT\n")
    sid = session_id_of("linux", stack.ngrok)
    restart(stack, sid)
    posts = [c for c in stack.slack.calls_to("chat.postMessage") if c.body["channel"] == "C0AUDIT"]
    events = [r["event"] for r in stack.bot.audit_records()]
    assert len(posts) == len(events) >= 3
    assert all(sid in p.body["text"] for p in posts)


def test_each_channel_uses_its_own_ngrok_account(scenario_factory, ngrok_api_factory):
    staging_key = "2StagingKeyAbcdefghijklmnopq_0123456789"
    staging = ngrok_api_factory(sessions=5, api_key=staging_key)
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
    stack = scenario_factory(config=config, env={"NGROK_STAGING_KEY": staging_key})
    stack.secrets.append(staging_key)
    assert "30 ngrok agents online" in stack.ask("sessions")["text"]
    assert "5 ngrok agents online" in stack.ask("sessions", channel="C0STAGING")["text"]
    assert staging.log() and all(r.path.startswith("/tunnel_sessions") for r in staging.log())
    sid = session_id_of("linux", stack.ngrok)
    restart(stack, sid)
    assert sid in texts_of(stack.ask("audit"))
    assert sid not in texts_of(stack.ask("audit", channel="C0STAGING"))
