"""The watcher's pure parts: the diff rules, the cost of watching, its config, and every
message it renders (validated as Slack would, with hostile agent metadata)."""

from __future__ import annotations

import json

import pytest

from bot.ngrok.models import TunnelSession
from bot.settings.bot_config import ConfigError, load_config
from bot.slack.blocks import ButtonContext
from bot.slack.views import alerts as views
from bot.slack.views.digest import AccountDigest, Digest, render_digest
from bot.slack.views.home import AccountView, HomeView, render_home
from bot.watch.cost import cadence
from bot.watch.diff import Rules, diff
from bot.watch.model import Agent, Change, OwnAction, WatchState, host_name
from tests.servers.slack_checks import message_problem, view_problem

RULES = Rules(min_down=120, flapping_window=600, flapping_count=3)
HOSTILE = '{"host": "<!channel> edge-1 <@U123> & *x*"}'


def session(n: int, **fields: str) -> TunnelSession:
    raw = {"id": f"ts_{n:027d}", "agent_version": "3.20.0", "region": "eu", "os": "linux",
           "ip": f"10.0.0.{n}", "credential": {"id": "cr_1"},
           "metadata": json.dumps({"host": f"edge-{n}"})}  # fmt: skip
    raw.update(fields)
    return TunnelSession.from_api(raw)


def kinds(changes: list[Change]) -> list[str]:
    return [c.kind for c in changes]


def test_a_gone_agent_is_disconnected_only_after_min_down_and_back_under_a_new_id():
    state, changes = diff(WatchState(), [session(1), session(2)], now=0, rules=RULES)
    assert changes == []  # baseline
    state, changes = diff(state, [session(2)], now=60, rules=RULES)
    assert changes == [] and "ts_" + "1".zfill(27) in state.gone
    state, changes = diff(state, [session(2)], now=150, rules=RULES)  # last seen at 0
    assert kinds(changes) == ["disconnected"]
    successor = session(3, ip="10.0.0.1", metadata=json.dumps({"host": "edge-1"}))
    state, changes = diff(state, [session(2), successor], now=400, rules=RULES)
    assert kinds(changes) == ["reconnected"]
    assert changes[0].seconds == 400 and changes[0].agent.id == successor.id
    assert state.gone == {}


def test_flapping_new_and_version_changes():
    state, _ = diff(WatchState(), [session(1)], now=0, rules=RULES)
    seen = []
    for i, t in enumerate((10, 20, 30, 40)):
        state, changes = diff(state, [], now=t, rules=RULES)
        seen.append(kinds(changes))
        back = session(10 + i, ip="10.0.0.1", metadata=json.dumps({"host": "edge-1"}))
        state, changes = diff(state, [back], now=t + 5, rules=RULES)
        seen.append(kinds(changes))
    assert seen == [[], [], [], [], ["flapping"], [], [], []]  # once per window
    state, changes = diff(state, [session(20, ip="10.0.0.1",
                          metadata=json.dumps({"host": "edge-1"}), agent_version="3.26.1"),
                          session(21)], now=45, rules=RULES)  # fmt: skip
    assert sorted(kinds(changes)) == ["new", "version"]


def test_the_bots_own_action_is_noted_not_alerted():
    state, _ = diff(WatchState(), [session(1)], now=0, rules=RULES)
    own = OwnAction("a1", "restart", session(1).id, {"channel_id": "C1"}, 1)
    state, changes = diff(state, [], now=10, rules=RULES, own_actions=[own])
    assert kinds(changes) == ["own_left"] and state.gone == {}
    state, changes = diff(state, [], now=500, rules=RULES)
    assert changes == []
    back = session(9, ip="10.0.0.1", metadata=json.dumps({"host": "edge-1"}))
    state, changes = diff(state, [back], now=600, rules=RULES)
    assert kinds(changes) == ["own_back"]


def test_watch_cost_and_stretching():
    assert cadence(100, poll_interval=60, budget_share=0.25).pages == 1
    big = cadence(10_000, poll_interval=60, budget_share=0.25)
    assert big.stretched and big.pages == 100 and round(big.interval) == 222
    assert not cadence(2_700, poll_interval=60, budget_share=0.25).stretched


def test_alerts_config_defaults_per_account_and_errors_with_lines():
    env = {"K1": "ngrok-key-one-0123456789", "K2": "ngrok-key-two-0123456789"}
    text = (
        "accounts:\n  a: {api_key_env: K1}\n  b:\n    api_key_env: K2\n"
        "    alerts: {channel: C0B, poll_interval: 30s}\n"
        "default_account: a\nalerts: {channel: C0A}\n"
    )
    config = load_config(text, source="cfg.yml", env=env)
    assert config.alerts["a"].channel == "C0A" and config.alerts["a"].min_down == 120
    assert config.alerts["b"].poll_interval == 30 and config.alerts["b"].budget_share == 0.25
    with pytest.raises(ConfigError) as error:
        load_config(
            "alerts: {channel: nope, poll_intervall: 1m}\n"
            "digest: {channel: C0D, timezone: Mars/X}\n",
            source="cfg.yml", env={"NGROK_API_KEY": "ngrok-key-0123456789"},
        )  # fmt: skip
    problems = "\n".join(error.value.problems)
    assert "cfg.yml:1: alerts.poll_intervall" in problems
    assert "cfg.yml:2: digest.timezone" in problems


def agent(n: int, metadata: str = "") -> Agent:
    return Agent.from_session(session(n, metadata=metadata) if metadata else session(n),
                              now=1_700_000_000, first_seen=0)  # fmt: skip


def test_every_watcher_message_validates_and_no_metadata_can_ping():
    hostile = [agent(i, HOSTILE) for i in range(1, 8)]
    assert host_name(HOSTILE, "", "") == "<!channel> edge-1 <@U123> & *x*"
    change = Change("reconnected", hostile[0], 1_700_000_100, 90, agent(99))
    own = OwnAction("a1", "restart", "ts_1", {"channel_id": "C1"}, 1)
    messages = [
        views.render_disconnected(hostile, account="prod", min_down=120, alert_id="A1", fleet=9),
        views.render_disconnected(hostile, account="prod", min_down=120, alert_id="A1", fleet=7),
        views.render_recovered(hostile, account="prod", outage_seconds=300, alert_id="A1"),
        views.render_reconnected([change] * 12, still_down=2),
        views.render_changes("new", [change], account="prod"),
        views.render_changes("version", [change], account="prod"),
        views.render_changes("flapping", [Change("flapping", hostile[0], 1, count=3)], account="p"),
        views.render_api_problem(account="prod", key_failed=True, sentence="<!here> 401"),
        views.render_api_recovered(account="prod", key_failed=False, seconds=75),
        views.render_own_action(Change("own_back", hostile[0], 1, 4, agent(5), action=own)),
        views.render_own_action(Change("own_left", hostile[0], 1, action=own)),
        views.render_rate_limited(3),
        views.render_alert_agents(
            "7 agents", [views.AgentState(a, "ts_" + "9" * 27) for a in hostile], now=1.7e9,
            context=ButtonContext("C0ALERTS", None, b"k" * 32),
        ),
        render_digest(Digest("Wed 02 Dec 2026", [AccountDigest(
            "prod", 100, -2, 3, 2, [("<!channel>", 300.0, True)], 5, "3.26.1")],
            [("U0OPS", "restart", 2)], [("U0OPS", 1)])),
    ]  # fmt: skip
    assert messages[0]["text"].startswith("7 agents in eu disconnected: ")
    assert messages[1]["text"].startswith("All 7 watched agents")
    for message in messages:
        assert message_problem(message) is None, message
        raw = json.dumps(message, ensure_ascii=False)
        assert "<!channel>" not in raw and "<@U123>" not in raw and "<!here>" not in raw
    state, _ = diff(WatchState(), [session(i, metadata=HOSTILE) for i in range(1, 60)],
                    now=1.7e9, rules=RULES)  # fmt: skip
    home = render_home(HomeView("U1", 1.7e9 + 30, [AccountView("prod", state),
                                                   AccountView("stage", None)]))  # fmt: skip
    assert view_problem(home) is None
    assert "<!channel>" not in json.dumps(home)


def test_the_alert_rate_limit_is_configured_with_lines_for_mistakes():
    env = {"NGROK_API_KEY": "ngrok-key-0123456789"}
    config = load_config("alerts: {channel: C0A}\n", source="cfg.yml", env=env)
    assert (config.alerts["default"].max_alerts, config.alerts["default"].alert_window) == (6, 600)
    text = "alerts:\n  channel: C0A\n  max_alerts: 3\n  alert_window: 1h\n"
    config = load_config(text, source="cfg.yml", env=env)
    assert (config.alerts["default"].max_alerts, config.alerts["default"].alert_window) == (3, 3600)
    bad = "alerts:\n  channel: C0A\n  max_alerts: 0\n  alert_window: soon\n"
    with pytest.raises(ConfigError) as error:
        load_config(bad, source="cfg.yml", env=env)
    problems = "\n".join(error.value.problems)
    assert "cfg.yml:3: alerts.max_alerts" in problems and "count from 1 to 1000" in problems
    assert "cfg.yml:4: alerts.alert_window" in problems
