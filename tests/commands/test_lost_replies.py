"""Replies that die with their consumer: the record of a running reply, who counts as dead,
and the one sentence that replaces the placeholder, exactly once."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from bot.state.consumers import (
    ConsumerId,
    beat,
    is_dead,
    pid_running,
    this_consumer,
)
from commands.lost_replies import REPLY_PREFIX, recover_replies, run_kept
from tests.commands.scenario import clock_of, deps_of, settle
from tests.e2e_fixtures import ALICE, OPS, texts_of, wait_until

GONE = ConsumerId("another-host", 4242, "feedfacecafe")


def replies(stack) -> list[dict]:
    return deps_of(stack).store.find_requests(REPLY_PREFIX)


def command_inv(url: str) -> dict:
    """A slash command's invocation as its job carries it: the ack shows "working…"."""
    return {
        "entry": "command", "user_id": ALICE, "channel_id": OPS, "thread_ts": None,
        "response_url": url, "placeholder": "ack", "placeholder_ts": None,
    }  # fmt: skip


def put_running(stack, reply_id: str, owner: ConsumerId, asked: str) -> str:
    """A reply record as a consumer leaves it when it is killed mid-job; returns the
    response_url key that the user's placeholder belongs to."""
    url = stack.slack.response_url()
    record = {
        "id": reply_id, "state": "running", "owner": owner.to_data(),
        "inv": command_inv(url), "asked": asked, "approving": False,
        "started": clock_of(stack)(),
    }  # fmt: skip
    deps_of(stack).store.put_request(REPLY_PREFIX + reply_id, record, ttl_seconds=600)
    return url.rsplit("/", 1)[1]


def test_a_reply_is_running_while_its_job_runs_and_done_after(scenario_factory):
    stack = scenario_factory(ngrok={"latency": 0.5})
    stack.sender.settling = False
    _, key = stack.slash("sessions region=eu")
    (running,) = wait_until(lambda: replies(stack), what="the running record")
    assert running["state"] == "running"
    assert running["asked"] == "/ngrok sessions region=eu"
    assert running["owner"] == this_consumer().to_data()
    assert running["inv"]["response_url"].endswith(key)
    settle(deps_of(stack))
    (done,) = replies(stack)
    assert done["state"] == "done" and done["id"] == running["id"]
    assert "agents online" in stack.reply(key)["text"]


def test_a_failing_job_is_told_sorry_then_done_and_raises_for_the_log(stack):
    deps = deps_of(stack)
    told: list[str] = []

    def broken(deps_: object, payload: dict) -> None:
        assert replies(stack)[0]["state"] == "running"
        raise RuntimeError("boom")

    def on_error(deps_: object, payload: dict, error: Exception) -> None:
        told.append(str(error))
        assert replies(stack)[0]["state"] == "running", "told before the record is done"

    payload = {"inv": command_inv(stack.slack.response_url()), "text": "sessions"}
    with pytest.raises(RuntimeError):
        run_kept(deps, broken, on_error, payload)
    assert told == ["boom"]
    assert [r["state"] for r in replies(stack)] == ["done"]


def test_who_is_dead(stack):
    deps, now = deps_of(stack), clock_of(stack)()
    store, me = deps.store, this_consumer()
    assert not is_dead(store, me, now, me=me), "this process never judges its own jobs"
    assert is_dead(store, GONE, now, me=me), "no heartbeat at all"
    beat(store, GONE, now - 10)
    assert not is_dead(store, GONE, now, me=me)
    assert is_dead(store, GONE, now + 25, me=me), "heartbeat older than 30 s"
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    assert not pid_running(finished.pid)
    here_gone = ConsumerId(me.host, finished.pid, "0123456789ab")
    beat(store, here_gone, now)
    assert is_dead(store, here_gone, now, me=me), "same host, pid gone: dead at once"
    here_alive = ConsumerId(me.host, me.pid, "another-start")  # a live pid, beating
    beat(store, here_alive, now)
    assert not is_dead(store, here_alive, now, me=me)


def test_a_dead_consumers_reply_is_told_once_in_place_escaped(stack):
    key = put_running(stack, "r1", GONE, "sessions meta=<!channel> & <@U123>")
    recover_replies(deps_of(stack), {})
    recover_replies(deps_of(stack), {})
    (call,) = stack.slack.calls_to("response_url", key=key)
    body = call.body
    assert body["replace_original"] is True and body.get("response_type") == "ephemeral"
    text = texts_of(body)
    assert "The bot restarted while answering" in text and "Run it again." in text
    assert "nothing was changed" in text
    assert "<!channel>" not in text and "<@U123>" not in text and "&lt;!channel&gt;" in text
    assert [r["state"] for r in replies(stack)] == ["lost"]


def test_a_live_consumers_reply_is_left_alone(stack):
    deps = deps_of(stack)
    alive = ConsumerId("another-host", 7, "0123456789ab")
    beat(deps.store, alive, clock_of(stack)())
    mine = put_running(stack, "mine", this_consumer(), "/ngrok sessions")
    theirs = put_running(stack, "theirs", alive, "/ngrok sessions")
    recover_replies(deps, {})
    assert not stack.slack.calls_to("response_url", key=mine)
    assert not stack.slack.calls_to("response_url", key=theirs)
    assert {r["state"] for r in replies(stack)} == {"running"}
    clock_of(stack).advance(31)  # their heartbeat stops; ours is this process
    recover_replies(deps, {})
    assert len(stack.slack.calls_to("response_url", key=theirs)) == 1
    assert not stack.slack.calls_to("response_url", key=mine)


def test_two_recoverers_at_once_tell_each_lost_reply_exactly_once(stack):
    deps = deps_of(stack)
    keys = [put_running(stack, f"r{n}", GONE, f"/ngrok session ts_{n}") for n in range(8)]
    start = threading.Barrier(2)

    def recover() -> None:
        start.wait()
        recover_replies(deps, {})

    threads = [threading.Thread(target=recover) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for key in keys:
        assert len(stack.slack.calls_to("response_url", key=key)) == 1, key
    assert {r["state"] for r in replies(stack)} == {"lost"}
