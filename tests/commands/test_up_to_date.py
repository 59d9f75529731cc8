"""An agent already on the newest version: no Update offered when the fleet scan says so,
and ngrok's "no update available" reads as "already up to date", never as a failure."""

import json

from tests.bot_process import buttons_in, find_button
from tests.e2e_fixtures import texts_of

NEWEST = "3.26.1"  # the stand-in's latest agent version
CACHE = {"FLEET_CACHE_SECONDS": "600"}  # the scan stays cached for the whole test


def newest_linux(stack) -> str:
    for sid in stack.ngrok.session_ids():
        raw = stack.ngrok.session(sid) or {}
        if (
            raw.get("os") == "linux"
            and raw.get("transport") != "ssh"
            and raw.get("agent_version") == NEWEST
        ):
            return sid
    raise AssertionError("no linux agent on the newest version")


def list_reads(stack) -> int:
    return len([r for r in stack.ngrok.log() if r.method == "GET" and r.path == "/tunnel_sessions"])


def offers_update(message: dict) -> bool:
    return any(b["text"]["text"] == "Update…" for b in buttons_in(message))


def test_details_offer_no_update_when_the_cached_scan_shows_the_newest(scenario_factory):
    stack = scenario_factory(env=CACHE)
    sid = newest_linux(stack)
    cold = stack.ask(f"session {sid}")  # nothing cached: no scan for this, Update offered
    assert list_reads(stack) == 0
    assert offers_update(cold)
    stack.ask("sessions")
    reads = list_reads(stack)
    warm = stack.ask(f"session {sid}")
    assert list_reads(stack) == reads  # the cached scan answered it
    assert not offers_update(warm)
    assert f"already runs {NEWEST}, the newest version in this account" in texts_of(warm)
    assert any("Restart" in b["text"]["text"] for b in buttons_in(warm))


def test_update_of_an_agent_on_the_newest_version_says_so_in_one_sentence(scenario_factory):
    stack = scenario_factory(env=CACHE)
    sid = newest_linux(stack)
    stack.ask("sessions")
    answer = stack.ask(f"update {sid}")
    assert answer["text"] == (
        f"{sid} already runs {NEWEST}, the newest version in this account; nothing to update."
    )
    assert buttons_in(answer) == []
    assert stack.action_posts() == []


def test_no_update_available_reads_as_already_up_to_date(stack):
    sid = newest_linux(stack)  # cold cache: the update is offered and asked for
    prompt = stack.ask(f"update {sid}")
    result = stack.reply(stack.click(find_button(prompt, "ngrok_approve")))
    assert "already up to date" in texts_of(result)
    assert ":x:" not in texts_of(result) and "Could not" not in texts_of(result)
    record = stack.posted(
        "chat.update", predicate=lambda c: "already up to date" in json.dumps(c.body)
    )[0]
    assert sid in texts_of(record.body) and "failed" not in texts_of(record.body)
    (post,) = stack.action_posts(sid)  # the update, and no restart after it
    assert post.path.endswith("/update") and post.status == 400
    executed = [r for r in stack.bot.audit_records() if r["event"] == "executed"]
    assert [(r["session_id"], r["outcome"]) for r in executed] == [(sid, "already up to date")]
    assert not [r for r in stack.bot.audit_records() if r["event"] == "failed"]
