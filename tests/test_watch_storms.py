"""The watcher under storms, end to end as in test_watch_e2e.py (local ngrok and Slack
APIs, consumer threads running the chain, intervals scaled down through the config): the
per-channel rate limit, a fleet-wide outage, a flapping agent and the ngrok API down.

Every wait is on a condition (a scan seen in the store, a message at the Slack stand-in),
never a fixed sleep that the assertion depends on.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from bot.watch.model import WatchState
from commands.watch import JOB_WATCH_KEEPER, load_state
from tests.watch_fixtures import ALERTS, Bot, start_bot


def watching(bot: Bot) -> None:
    bot.deps.jobs.submit(JOB_WATCH_KEEPER, {})
    scanned(bot, lambda s: s.scanned_at is not None)


def scanned(bot: Bot, predicate: Callable[[WatchState], bool], timeout: float = 20) -> WatchState:
    """The watcher's state once a scan has made `predicate` true."""
    deadline = time.monotonic() + timeout
    while True:
        state = load_state(bot.deps.store, "default")[0]
        if predicate(state):
            return state
        assert time.monotonic() < deadline, "the watcher never saw it"
        time.sleep(0.05)


def posted(word: str):
    return lambda call: call.body.get("channel") == ALERTS and word in call.body.get("text", "")


@pytest.fixture
def limited(tmp_path, slack_api, ngrok_api_factory):
    ngrok = ngrok_api_factory(sessions=12, seed=3, rate_limit=None)
    yield from start_bot(tmp_path, slack_api, ngrok, max_alerts="2")


def test_separate_events_beyond_the_limit_go_into_the_latest_alerts_thread(limited):
    bot = limited
    watching(bot)
    hosts = [f"edge-burst-{i}" for i in range(5)]
    for host in hosts:  # five separate events: one new agent per scan
        bot.ngrok.add_session(metadata=f'{{"host": "{host}"}}')
        bot.slack.wait_for("chat.postMessage", predicate=posted(host), timeout=20)
    tops = bot.alerts()
    assert len(tops) == 2  # max_alerts: 2
    assert hosts[0] in tops[0]["text"] and hosts[1] in tops[1]["text"]
    calls = bot.slack.calls_to("chat.postMessage")
    second_ts = next(c.response["ts"] for c in calls if hosts[1] in c.body.get("text", ""))
    thread = [m["text"] for m in bot.thread(second_ts)]
    assert "rate-limited" in thread[0]
    assert [h for h in hosts[2:] if any(h in t for t in thread[1:])] == hosts[2:]


def test_a_fleet_wide_outage_is_one_message(limited):
    bot = limited
    watching(bot)
    for sid in bot.ngrok.session_ids():
        bot.ngrok.disconnect(sid)
    bot.slack.wait_for("chat.postMessage", predicate=posted("disconnected"), timeout=30)
    scanned(bot, lambda s: not s.agents and all(g.declared for g in s.gone.values()))
    (alert,) = bot.alerts()
    assert alert["text"].startswith("All 12 watched agents")
    assert [c for c in bot.slack.calls_to("chat.postMessage") if c.body.get("thread_ts")] == []


@pytest.fixture
def slow_min_down(tmp_path, slack_api, ngrok_api_factory):
    ngrok = ngrok_api_factory(sessions=6, seed=3, rate_limit=None)
    yield from start_bot(tmp_path, slack_api, ngrok, min_down="6s")


def test_an_agent_that_flaps_is_one_flapping_alert_not_disconnects(slow_min_down):
    """flapping_count 3 within 60 s; min_down 6 s is longer than any of the flaps."""
    bot = slow_min_down
    watching(bot)
    current = bot.ngrok.session_ids()[0]
    for _ in range(3):
        bot.ngrok.disconnect(current)
        scanned(bot, lambda s, sid=current: sid in s.gone)  # a scan saw it leave
        current = bot.ngrok.reconnect(current)["id"]
        scanned(bot, lambda s, sid=current: sid in s.agents)  # and come back
    call = bot.slack.wait_for("chat.postMessage", predicate=posted("flapping"), timeout=20)
    assert "(3 disconnects in the flapping window)" in call[0].body["text"]
    later = time.time() + 1
    scanned(bot, lambda s: (s.scanned_at or 0) > later)  # a scan or two after it
    assert len(bot.alerts("flapping")) == 1
    assert bot.alerts("disconnected") == [] and bot.alerts("reconnected") == []
    assert bot.alerts("first time") == []  # each return is the same agent, not a new one


@pytest.fixture
def quick_to_give_up(tmp_path, slack_api, ngrok_api_factory):
    ngrok = ngrok_api_factory(sessions=6, seed=3, rate_limit=None)
    yield from start_bot(tmp_path, slack_api, ngrok, env={"NGROK_RETRY_BUDGET": "0.3"})


def test_the_ngrok_api_down_is_one_alert_then_recovered(quick_to_give_up):
    bot = quick_to_give_up
    watching(bot)
    bot.ngrok.inject_fault("503", times=1_000_000)  # every call, until cleared
    call = bot.slack.wait_for("chat.postMessage", predicate=posted("not answering"), timeout=20)
    text = call[0].body["text"]
    assert text.startswith("The ngrok API is not answering for account `default`: ")
    assert "HTTP 503" in text
    failing = len(bot.ngrok.requests_matching("GET", "/tunnel_sessions"))
    deadline = time.monotonic() + 20
    while len(bot.ngrok.requests_matching("GET", "/tunnel_sessions")) < failing + 3:
        assert time.monotonic() < deadline, "the watcher stopped trying"
        time.sleep(0.05)  # more scans fail, and retries end within the budget
    assert len(bot.alerts("not answering")) == 1
    bot.ngrok.clear_faults()
    ts = call[0].response["ts"]
    bot.slack.wait_for("chat.update", predicate=lambda c: c.body.get("ts") == ts, timeout=20)
    edited = bot.slack.message(ALERTS, ts) or {}
    assert "Recovered: the ngrok API answers again" in edited["text"]
    assert bot.alerts("disconnected") == []  # nobody was reported gone while blind
    assert len(bot.alerts()) == 1
