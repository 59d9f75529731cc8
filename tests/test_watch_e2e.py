"""The watcher end to end: the local ngrok API loses and regains agents, the bot's consumer
threads run the watcher's chain, and the local Slack API receives (and checks) the alerts.

Intervals are scaled down through the config (poll 1 s, min_down 2 s); the tests wait on
the Slack stand-in for the message they expect instead of sleeping a fixed time, and bounds
on elapsed time are generous because the machine is shared.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter

import pytest

from bot.slack.invocation import Invocation
from commands.approval import perform
from commands.watch import JOB_WATCH_KEEPER, load_state
from tests.watch_fixtures import ALERTS, Bot, settings_env, start_bot

POLL, MIN_DOWN = 1.0, 2.0


@pytest.fixture
def bot(tmp_path, slack_api, ngrok_api_factory):
    ngrok = ngrok_api_factory(sessions=12, seed=3, rate_limit=None)
    yield from start_bot(tmp_path, slack_api, ngrok)


def watching(bot: Bot) -> None:
    """Starts the chain and waits for the baseline scan."""
    bot.deps.jobs.submit(JOB_WATCH_KEEPER, {})
    deadline = time.monotonic() + 20
    while load_state(bot.deps.store, "default")[0].scanned_at is None:
        assert time.monotonic() < deadline, "the watcher never scanned"
        time.sleep(0.05)


def same_region(bot: Bot, n: int) -> list[str]:
    """n session ids of one region (the largest)."""
    sessions = [bot.ngrok.session(i) for i in bot.ngrok.session_ids()]
    regions = Counter(s.get("region") for s in sessions)
    region = regions.most_common(1)[0][0]
    return [s["id"] for s in sessions if s.get("region") == region][:n]


def is_alert(word: str):
    return lambda call: call.body.get("channel") == ALERTS and word in call.body.get("text", "")


def test_grouped_alert_within_bound_then_thread_follow_up_and_recovered_edit(bot):
    watching(bot)
    assert bot.alerts() == []  # the first scan is the baseline, not "12 new agents"
    gone = same_region(bot, 2)
    lost = [bot.ngrok.disconnect(i) for i in gone]
    started = time.monotonic()
    call = bot.slack.wait_for("chat.postMessage", predicate=is_alert("disconnected"), timeout=30)
    elapsed = time.monotonic() - started
    # Bound: poll_interval + min_down + one scan, with room for a loaded 2-core machine.
    assert elapsed < POLL + MIN_DOWN + POLL + 6, elapsed
    assert elapsed >= MIN_DOWN - 0.1  # never before min_down
    top = call[0].body
    region = lost[0]["region"]
    assert top["text"].startswith(f"2 agents in {region} disconnected: ")
    assert [b["type"] for b in top["blocks"]] == ["section", "context", "actions"]
    assert len(bot.alerts("disconnected")) == 1  # one message for the burst
    ts = call[0].response["ts"]
    for session in lost:
        bot.ngrok.reconnect(session["id"])
    bot.slack.wait_for("chat.update", predicate=lambda c: c.body.get("ts") == ts, timeout=30)
    edited = bot.slack.message(ALERTS, ts)
    assert edited is not None and edited["text"].startswith(f"Recovered: 2 agents in {region}")
    follow_ups = bot.thread(ts)
    assert follow_ups and "reconnected" in follow_ups[0]["text"]
    assert "All back." in json.dumps(follow_ups[-1]["blocks"])
    assert bot.alerts("new") == []  # the successors are the same agents, not new ones
    # "List them" shows both, each back under its new id with a Details button.
    alert_id = top["blocks"][2]["elements"][0]["value"]
    bot.deps.jobs.submit(
        "click",
        {"inv": {"entry": "action", "user_id": "U0OPS", "channel_id": ALERTS, "thread_ts": None},
         "kind": "alert_agents", "value": alert_id},
    )  # fmt: skip
    listed = bot.slack.wait_for("chat.postEphemeral", timeout=10)[0].body
    assert listed["text"].startswith("2 agent(s) of this alert (0 still down)")
    assert sum(json.dumps(b).count("ngrok_details") for b in listed["blocks"]) == 2


def test_a_short_flap_pages_nobody_but_a_new_agent_and_a_version_change_are_said(bot):
    watching(bot)
    victim = bot.ngrok.session_ids()[0]
    lost = bot.ngrok.disconnect(victim)
    bot.ngrok.reconnect(victim, agent_version="3.99.0")  # back at once, another version
    bot.ngrok.add_session(metadata='{"host": "edge-new-1", "env": "prod"}')
    bot.slack.wait_for("chat.postMessage", predicate=is_alert("changed version"), timeout=20)
    bot.slack.wait_for("chat.postMessage", predicate=is_alert("edge-new-1"), timeout=20)
    time.sleep(MIN_DOWN + 2 * POLL)
    assert bot.alerts("disconnected") == []
    assert lost["id"] not in load_state(bot.deps.store, "default")[0].gone


def test_the_bots_own_restart_is_noted_in_its_thread_never_alerted(bot):
    bot.ngrok.restart_delay = MIN_DOWN + 2  # longer than min_down: an outage, if anyone's
    watching(bot)
    target = bot.ngrok.session_ids()[0]
    session = bot.deps.ngrok_clients["default"].get_session(target)
    where = Invocation("action", "U0OPS", "C0OPS", "1700000000.000100", bot.deps.slack)
    outcome = perform(
        bot.deps, where, "default", "restart", session, action_id="test-restart-1",
        approver="U0OPS", fields={}, announce=lambda outcome: None,
    )  # fmt: skip
    assert outcome is not None and outcome.ok
    note = bot.slack.wait_for(
        "chat.postMessage",
        predicate=lambda c: (
            "Watcher:" in c.body.get("text", "") and c.body.get("thread_ts") == "1700000000.000100"
        ),
        timeout=30,
    )[0].body
    assert "is back as" in note["text"] and "after the bot's restart" in note["text"]
    time.sleep(2 * POLL)
    assert bot.alerts() == []


def test_a_failing_api_key_is_one_alert_then_recovered(bot):
    watching(bot)
    bot.ngrok.set_api_key("ngrok-rotated-key-9876543210")
    call = bot.slack.wait_for("chat.postMessage", predicate=is_alert("API key failed"), timeout=20)
    time.sleep(3 * POLL)
    assert len(bot.alerts("API key failed")) == 1
    bot.ngrok.set_api_key("ngrok-test-api-key-0123456789")
    ts = call[0].response["ts"]
    bot.slack.wait_for("chat.update", predicate=lambda c: c.body.get("ts") == ts, timeout=20)
    assert "Recovered" in (bot.slack.message(ALERTS, ts) or {})["text"]
    assert bot.alerts("disconnected") == []  # nobody was reported gone while blind


def test_one_watcher_per_account_across_two_processes(tmp_path, slack_api, ngrok_api_factory):
    """Two processes, each trying to scan the same account every 50 ms for 5 s: the store's
    lock lets one scan through per interval, and the disconnect is alerted once."""
    ngrok = ngrok_api_factory(sessions=12, seed=3, rate_limit=None)
    env = settings_env(tmp_path, slack_api, ngrok)
    config = json.dumps({"env": env, "seconds": 5.0, "poll": "1s", "min_down": "1s"})
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.watch_child", config],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        time.sleep(1.5)
        ngrok.disconnect(ngrok.session_ids()[0])
        results = [
            json.loads(child.communicate(timeout=60)[0].splitlines()[-1]) for child in children
        ]
    finally:
        for child in children:
            if child.poll() is None:
                print("watch_child did not finish; killing it", file=sys.stderr)
                child.kill()
    attempts = [r["attempts"] for r in results]
    scans = [r["scans"] for r in results]
    assert all(a > 20 for a in attempts), attempts  # both really tried, all the time
    lists = len(ngrok.requests_matching("GET", "/tunnel_sessions"))
    assert lists == sum(scans)  # every scan was one page; nobody scanned outside the lock
    assert 3 <= sum(scans) <= 5.0 / (0.9 * 1.0) + 2, scans  # one per interval in total
    alerts = [c for c in slack_api.calls_to("chat.postMessage") if "disconnected" in c.body["text"]]
    assert len(alerts) == 1
