"""Listing the fleet: escaped rows with working buttons, paging, filters as CEL, one shared
scan for identical lists."""

from collections import Counter

import bot.slack.blocks as bk
import bot.slack.views.sessions as views
from bot.slack.blocks import decode_button_value
from commands.grammar import SessionQuery
from tests.bot_process import find_button
from tests.e2e_fixtures import ALICE, OPS, session_id_of, texts_of


def test_slash_sessions_lists_the_fleet_escaped_with_working_buttons(stack):
    body = stack.ask("sessions")
    text = texts_of(body)
    assert "30 ngrok agents online" in body["text"]
    assert "<!channel>" not in text and "<@U123>" not in text
    newest = stack.ngrok.session_ids()[0]
    assert newest in text
    pick = next(b for b in body["blocks"] if b.get("block_id") == "pick")["elements"][0]
    assert pick["action_id"] == "ngrok_details", "one select opens any agent shown"
    key = stack.bot.deps.settings.approval_secret
    value = decode_button_value(pick["options"][0]["value"], key=key)
    assert value.session_id == newest and value.channel_id == OPS
    url = stack.slack.response_url()
    action = {"action_id": pick["action_id"], "block_id": "pick", "type": "static_select",
              "selected_option": pick["options"][0]}  # fmt: skip
    payload = stack.sender.block_actions(action, user=ALICE, channel=OPS, response_url=url)
    assert stack.sender.interactive(payload).status_code == 200
    detail = stack.reply(url.rsplit("/", 1)[1])
    assert f"ngrok agent {newest}" in detail["text"]


def table_ids(body: dict) -> list[str]:
    """The session ids in the list's table, in order."""
    table = next(b for b in body["blocks"] if b["type"] == "table")
    return [row[2]["text"] for row in table["rows"][1:]]


def test_older_button_pages_through_the_fleet(stack):
    first = stack.ask("sessions limit=10")
    older = find_button(first, "ngrok_page")
    assert table_ids(first) == stack.ngrok.session_ids()[:10]
    key = stack.click(older)
    second = stack.reply(key)
    assert table_ids(second) == stack.ngrok.session_ids()[10:20]
    replies = [c.body for c in stack.slack.calls_to("response_url", key=key)]
    assert all(r.get("replace_original") is True for r in replies)


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


def message_values(body: dict) -> list[str]:
    """Every sealed value in a list message: the select's options and the buttons."""
    found = []
    for block in body["blocks"]:
        for element in block.get("elements", []):
            found += [o["value"] for o in element.get("options", [])]
            if element.get("type") == "button":
                found.append(element["value"])
    return found


def test_a_listing_renders_each_row_and_seals_each_value_once(stack, monkeypatch):
    """Issue 8, cheaper replies: fitting the page to one message renders its rows, and the
    message is made of those rows, not of a second rendering; no value is sealed twice."""
    rows, sealed = [], []
    real_row, real_encode = views._table_row, bk.encode_button_value

    def row(session, *args):
        rows.append(session.id)
        return real_row(session, *args)

    def encode(value, *args, **kwargs):
        if value.channel_id == OPS and value.op in ("details", "page"):
            sealed.append(value)
        return real_encode(value, *args, **kwargs)

    monkeypatch.setattr(views, "_table_row", row)
    monkeypatch.setattr(bk, "encode_button_value", encode)
    body = stack.ask("sessions limit=10")
    assert rows == table_ids(body) == stack.ngrok.session_ids()[:10]
    key = stack.bot.deps.settings.approval_secret
    shown = Counter(decode_button_value(v, key=key) for v in message_values(body))
    assert sum(shown.values()) == 13, "10 agents, Export, Post to channel, Older"
    assert Counter(sealed) == shown


def test_a_plain_listing_skips_the_local_filter(stack, monkeypatch):
    """Without version bounds, meta= or words the API's answer is the list: no pass over
    the fleet asking each session whether it matches."""
    asked = []
    real = SessionQuery.matches_locally

    def matches_locally(self, session):
        asked.append(session.id)
        return real(self, session)

    monkeypatch.setattr(SessionQuery, "matches_locally", matches_locally)
    assert "30 ngrok agents online" in stack.ask("sessions")["text"]
    assert asked == []
    stack.ask("sessions version>=0.1")
    assert len(asked) == 30
