"""Asking for restart, stop or update: who may, where, on what, and with whose approval."""

from bot.slack.blocks import decode_button_value
from tests.bot_process import buttons_in, find_button
from tests.e2e_fixtures import ALICE, BOB, MALLORY, OPS, OTHER, session_id_of, texts_of


def approve_buttons(body: dict) -> list[dict]:
    return [b for b in buttons_in(body) if b["action_id"] == "ngrok_approve"]


def test_windows_restart_is_not_offered_and_refused_with_the_reason(stack):
    sid = session_id_of("windows", stack.ngrok)
    refusal = stack.ask(f"restart {sid}")
    assert "Windows" in texts_of(refusal)
    assert approve_buttons(refusal) == []
    assert stack.action_posts() == []


def test_actions_are_refused_in_a_channel_without_them(stack):
    sid = session_id_of("linux", stack.ngrok)
    refusal = stack.ask(f"restart {sid}", channel=OTHER)
    assert OTHER in texts_of(refusal)
    assert approve_buttons(refusal) == []


def test_without_a_config_everyone_lists_and_nobody_acts(scenario_factory):
    stack = scenario_factory(config=None)
    assert "ngrok agents online" in stack.ask("sessions", user=MALLORY)["text"]
    sid = session_id_of("linux", stack.ngrok)
    refusal = texts_of(stack.ask(f"restart {sid}", user=MALLORY))
    assert "BOT_CONFIG" in refusal and "roles.operator" in refusal
    assert stack.action_posts() == []


def test_rules_match_sessions_by_metadata(scenario_factory):
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
    stack = scenario_factory(config=config)
    prod = stack.ngrok.add_session(os="linux", metadata='{"env": "prod", "host": "web-1"}')
    dev = stack.ngrok.add_session(os="linux", metadata='{"env": "dev", "host": "web-2"}')
    prod_prompt = stack.ask(f"restart {prod['id']}")
    assert "second person" in texts_of(prod_prompt)
    assert approve_buttons(prod_prompt) == []
    dev_prompt = stack.ask(f"restart {dev['id']}")
    assert "second person" not in texts_of(dev_prompt)
    assert len(approve_buttons(dev_prompt)) == 1


def test_an_update_needs_the_approval_its_restart_needs(scenario_factory):
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
    stack = scenario_factory(config=config)
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"update {sid}")
    assert "second person" in texts_of(prompt)
    assert approve_buttons(prompt) == []


def test_the_restart_button_of_an_agent_picked_in_a_list_opens_the_prompt(stack):
    key = stack.bot.deps.settings.approval_secret
    listing = stack.ask("sessions limit=5")
    select = next(b for b in listing["blocks"] if b.get("block_id") == "pick")["elements"][0]
    option = select["options"][0]
    url = stack.slack.response_url()
    action = {
        "action_id": select["action_id"], "block_id": "pick", "type": "static_select",
        "selected_option": option,
    }  # fmt: skip
    payload = stack.sender.block_actions(action, user=ALICE, channel=OPS, response_url=url)
    assert stack.sender.interactive(payload).status_code == 200
    detail = stack.reply(url.rsplit("/", 1)[1])
    sid = decode_button_value(option["value"], key=key).session_id
    restart = next(
        b for b in buttons_in(detail)
        if b["action_id"] == "ngrok_request"
        and decode_button_value(b["value"], key=key).op != "stop"
    )  # fmt: skip
    prompt = stack.reply(stack.click(restart))
    assert find_button(prompt, "ngrok_approve")
    assert sid in texts_of(prompt)
