"""Listing the fleet: escaped rows with working buttons, paging, filters as CEL, one shared
scan for identical lists."""

from bot.slack.blocks import decode_button_value
from tests.bot_process import buttons_in, find_button
from tests.e2e_fixtures import OPS, session_id_of, texts_of


def test_slash_sessions_lists_the_fleet_escaped_with_working_buttons(stack):
    body = stack.ask("sessions")
    text = texts_of(body)
    assert "30 ngrok agents online" in body["text"]
    assert "<!channel>" not in text and "<@U123>" not in text
    newest = stack.ngrok.session_ids()[0]
    assert newest in text
    details = [b for b in buttons_in(body) if b["action_id"] == "ngrok_details"]
    assert details, "each session row offers Details"
    value = decode_button_value(details[0]["value"], key=stack.bot.deps.settings.approval_secret)
    assert value.session_id == newest and value.channel_id == OPS
    detail = stack.reply(stack.click(details[0]))
    assert f"ngrok agent {newest}" in detail["text"]


def test_older_button_pages_through_the_fleet(stack):
    first = stack.ask("sessions limit=10")
    older = find_button(first, "ngrok_page")
    shown_first = set(stack.ngrok.session_ids()[:10])
    assert all(s in texts_of(first) for s in shown_first)
    key = stack.click(older)
    second = stack.reply(key)
    next_ids = stack.ngrok.session_ids()[10:20]
    assert all(s in texts_of(second) for s in next_ids)
    assert not any(s in texts_of(second) for s in shown_first)
    assert second.get("replace_original") is True


def test_filters_reach_the_api_as_cel(stack):
    body = stack.ask("sessions os=windows")
    lists = [r for r in stack.ngrok.log() if r.path == "/tunnel_sessions"]
    assert [r.query.get("filter") for r in lists] == [['obj.os == "windows"']]
    windows = [
        s for s in stack.ngrok.session_ids() if stack.ngrok.session(s).get("os") == "windows"
    ]
    assert f"{len(windows)} ngrok agents online" in body["text"]


def test_identical_lists_share_one_scan_until_an_action(stack):
    for _ in range(3):
        stack.ask("sessions")
    scans = [r for r in stack.ngrok.log() if r.path == "/tunnel_sessions"]
    assert len(scans) == 1
    sid = session_id_of("linux", stack.ngrok)
    stack.reply(stack.click(find_button(stack.ask(f"restart {sid}"), "ngrok_approve")))
    assert len(stack.action_posts(sid)) == 1
    body = stack.ask("sessions")
    assert sid not in texts_of(body)
