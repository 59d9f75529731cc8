"""Naming agents by host and finding them again after a restart, end to end through the
deployed shape (the Procfile's `web:` with its job consumer)."""

from __future__ import annotations

import json

from tests.bot_process import find_button
from tests.e2e_fixtures import texts_of, wait_until


def test_host_names_one_several_and_none(stack_factory):
    stack = stack_factory()
    one = stack.ngrok.add_session(metadata=json.dumps({"host": "edge-77"}), os="linux")
    twins = [
        stack.ngrok.add_session(metadata=f"hostname=twin-1 rack={n}", os="linux") for n in (1, 2)
    ]
    detail = stack.ask("session edge-77")
    assert detail["blocks"][0]["text"]["text"].startswith("ngrok agent edge-77 (")
    assert one["id"] in texts_of(detail)
    prompt = stack.ask("restart edge-77")
    assert one["id"] in texts_of(prompt) and find_button(prompt, "ngrok_approve")
    several = stack.ask("restart twin-1")
    text = texts_of(several)
    assert "2 online agents are named" in text
    assert all(t["id"] in text for t in twins)
    assert find_button(several, "ngrok_request")
    none = texts_of(stack.ask("session edge-78"))
    assert "No online agent is named" in none and "edge-77" in none
    listing = stack.ask("sessions edge-77")
    table = next(b for b in listing["blocks"] if b["type"] == "table")
    assert [row[1]["text"] for row in table["rows"][1:]] == ["edge-77"]  # host name first
    assert stack.action_posts() == []


def test_an_old_id_names_its_successor_and_a_strange_id_says_it_was_never_seen(stack_factory):
    stack = stack_factory()
    agent = stack.ngrok.add_session(metadata=json.dumps({"host": "edge-90"}), os="linux")
    prompt = stack.ask(f"restart {agent['id']}")
    stack.click(find_button(prompt, "ngrok_approve"))
    back = stack.posted(
        "chat.postMessage", predicate=lambda c: "is back as" in json.dumps(c.body), timeout=20
    )[0]
    new_id = next(s for s in stack.ngrok.session_ids() if s in json.dumps(back.body))
    hint = stack.ask(f"session {agent['id']}")
    assert f"restarted as `{new_id}`" in texts_of(hint)
    assert find_button(hint, "ngrok_details")
    again = stack.ask(f"restart {agent['id']}")
    assert find_button(again, "ngrok_request")  # offers the action on the new id
    never = texts_of(stack.ask("session ts_334AeguNPwngGnMIrd3SZLE7pdZ"))
    assert "never seen it" in never
    wait_until(lambda: len(stack.action_posts()) == 1, what="one restart")
