"""The App Home and the daily digest, in process: an `app_home_opened` event dispatched
through the real app publishes the Home tab from the watcher's last scan (no ngrok call),
only for the accounts the user may see, and the digest goes out once at its local time
with an injected clock."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from slack_bolt.request import BoltRequest

from bot.app import create_app
from bot.deps import build_deps
from bot.ngrok.models import TunnelSession
from bot.settings.env import load_settings
from bot.slack.invocation import Invocation
from bot.state.requests import TwoPersonRequest
from commands.digest import run_digest, show_outdated
from commands.home import build_home
from commands.watch import scan_once, watched
from tests.watch_fixtures import API_KEY, Bot, settings_env, start_bot


@pytest.fixture
def bot(tmp_path, slack_api, ngrok_api_factory):
    ngrok = ngrok_api_factory(sessions=30, seed=5, rate_limit=None)
    yield from start_bot(tmp_path, slack_api, ngrok)


def texts(view: dict) -> str:
    return json.dumps(view["blocks"], ensure_ascii=False)


def test_app_home_opened_publishes_the_fleet_from_the_last_scan(bot):
    cfg = watched(bot.deps)["default"]
    state = scan_once(bot.deps, "default", cfg)
    assert state is not None
    request = TwoPersonRequest(
        id="req-home-1", state="requested", action="stop",
        session=TunnelSession.from_api(bot.ngrok.session(bot.ngrok.session_ids()[0]) or {}),
        requester="U0OPS", channel="C0OPS", thread_ts=None, account="default", ttl=600,
    )  # fmt: skip
    bot.deps.store.put_request(request.id, request.to_record(), ttl_seconds=600)
    bot.ngrok.clear_log()
    body = {
        "type": "event_callback", "team_id": "T111", "event_id": "Ev1",
        "event": {"type": "app_home_opened", "user": "U0SRE", "tab": "home",
                  "channel": "D0HOME", "event_ts": "1.2"},
    }  # fmt: skip
    assert bot.app.dispatch(BoltRequest(body=body, mode="socket_mode")).status == 200
    bot.slack.wait_for("views.publish", timeout=15)
    view = bot.slack.home_view("U0SRE")
    assert view is not None and view["type"] == "home"
    assert bot.ngrok.log() == []  # rendered from the store, no ngrok call
    text = texts(view)
    versions = {a.version for a in state.agents.values()}
    assert f"*{len(state.agents)} agents online*" in text
    assert "From the watcher's scan" in text and "Versions (newest first)" in text
    assert ":warning:" in text and len(versions) > 1  # outdated versions highlighted
    approve = [
        e for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]
        if e["action_id"] == "ngrok_tp_approve"
    ]  # fmt: skip
    assert len(approve) == 1  # the request waiting for this approver, with a signed token
    # The requester sees it as their own pending request, without buttons.
    bot.deps.jobs.submit("home", {"user_id": "U0OPS"})
    bot.slack.wait_for("views.publish", 2, timeout=15)
    mine = texts(bot.slack.home_view("U0OPS") or {"blocks": []})
    assert "waiting for an approver" in mine and "ngrok_tp_approve" not in mine


def test_the_digest_goes_out_once_at_its_local_time(bot):
    nine_berlin = datetime(2026, 12, 2, 8, 0, tzinfo=UTC).timestamp()  # 09:00 CET
    now = [nine_berlin - 86400 - 30]
    bot.deps.clock = lambda: now[0]
    cfg = watched(bot.deps)["default"]
    assert scan_once(bot.deps, "default", cfg) is not None  # yesterday's size
    bot.deps.store.add_audit(
        {"ts": nine_berlin - 3600, "event": "executed", "action": "restart", "actor": "U0OPS",
         "session_id": "ts_x", "outcome": "ok"}
    )  # fmt: skip
    bot.ngrok.add_session(metadata='{"host": "edge-late"}')
    now[0] = nine_berlin - 120
    time.sleep(1.0)  # the scan's lock lasts 0.9 s of real time
    assert scan_once(bot.deps, "default", cfg) is not None
    now[0] = nine_berlin - 60
    run_digest(bot.deps, {})
    early = [c for c in bot.slack.calls_to("chat.postMessage") if c.body["channel"] == "C0DIGEST"]
    assert early == []  # not before 09:00 local time
    now[0] = nine_berlin + 5
    run_digest(bot.deps, {})
    now[0] = nine_berlin + 65
    run_digest(bot.deps, {})
    posted = [
        c.body for c in bot.slack.calls_to("chat.postMessage") if c.body["channel"] == "C0DIGEST"
    ]
    assert len(posted) == 1
    digest = posted[0]
    text = json.dumps(digest["blocks"], ensure_ascii=False)
    assert "ngrok fleet digest · Wed 02 Dec 2026" in text
    assert "31 agents online (+1 since yesterday)" in text
    assert "<@U0OPS>: 1 restart" in text
    assert "ngrok_update_outdated" in text
    # "Update outdated…" opens the preview of a fleet run over the outdated agents.
    button = next(
        e for b in digest["blocks"] for e in b.get("elements", [])
        if e.get("action_id") == "ngrok_update_outdated"
    )  # fmt: skip
    clicker = Invocation(
        entry="action", user_id="U0OPS", channel_id="C0DIGEST", thread_ts=None,
        client=bot.deps.slack,
    )  # fmt: skip
    show_outdated(clicker, bot.deps, button["value"])
    bot.deps.jobs.wait_idle(10)
    (preview,) = [
        c.body for c in bot.slack.calls_to("chat.postEphemeral") if c.body["user"] == "U0OPS"
    ]
    assert preview["text"].startswith("Update ") and "Preview of run" in preview["text"]
    assert "version&lt;" in json.dumps(preview["blocks"])  # the outdated ones, nothing else


def test_check_says_when_the_fleet_is_too_large_for_the_interval(bot):
    from bot.doctor import _watch_rows
    from bot.watch.model import Agent, WatchState
    from commands.watch import save_state

    assert [ok for _, ok, _ in _watch_rows(bot.deps.settings)] == [None]  # no scan yet
    agents = {f"ts_{i}": Agent(f"ts_{i}", f"edge-{i}") for i in range(3000)}
    save_state(bot.deps.store, "default", WatchState(scanned_at=1.0, agents=agents), None)
    ((_name, ok, detail),) = _watch_rows(bot.deps.settings)
    assert ok is None and "interval stretched from 1 s" in detail
    assert "3000 agents, 30 request(s) per scan" in detail


TWO_ACCOUNTS = """
roles:
  viewer: [U0VIEW]
  approver: [U0SRE]
  operator: [U0OPS]
accounts:
  prod: {{api_key_env: NGROK_API_KEY}}
  lab: {{api_key_env: NGROK_API_KEY_LAB}}
default_account: prod
channels:
{channels}
alerts: {{channel: C0ALERTS, poll_interval: 1s, budget_share: 1}}
"""


def two_account_bot(tmp_path, slack_api, ngrok, channels: str) -> Bot:
    env = {**settings_env(tmp_path, slack_api, ngrok), "NGROK_API_KEY_LAB": API_KEY}
    text = TWO_ACCOUNTS.format(channels=channels)
    deps = build_deps(load_settings(env, config_text=text, config_source="test"))
    return Bot(deps, create_app(deps, token_verification=False), slack_api, ngrok)


def pending(bot: Bot, account: str) -> None:
    session = TunnelSession.from_api(bot.ngrok.session(bot.ngrok.session_ids()[0]) or {})
    request = TwoPersonRequest(
        id=f"req-{account}", state="requested", action="stop", session=session,
        requester="U0OPS", channel="C0OPS", thread_ts=None, account=account, ttl=600,
    )  # fmt: skip
    bot.deps.store.put_request(request.id, request.to_record(), ttl_seconds=600)


def test_app_home_shows_only_the_accounts_a_user_may_see(tmp_path, slack_api, ngrok_api_factory):
    """prod is the default account; lab is bound to no channel, so nobody sees it on the
    Home tab (nor its requests to approve) until a channel is bound to it."""
    ngrok = ngrok_api_factory(sessions=8, seed=5, rate_limit=None)
    bot = two_account_bot(tmp_path / "a", slack_api, ngrok, "  C0OPS: {actions: true}")
    stop = bot.deps.jobs.start_threads(workers=2)
    try:
        for account in ("prod", "lab"):
            assert scan_once(bot.deps, account, watched(bot.deps)[account]) is not None
            pending(bot, account)
        bot.deps.jobs.submit("home", {"user_id": "U0SRE"})
        bot.slack.wait_for("views.publish", timeout=15)
        text = texts(bot.slack.home_view("U0SRE") or {"blocks": []})
        assert "Account prod" in text and "Account lab" not in text
        assert text.count("ngrok_tp_approve") == 1  # prod's request, not lab's
        home = build_home(bot.deps, "U0VIEW")
        assert [a.name for a in home.accounts] == ["prod"]
        assert build_home(bot.deps, "U0NOBODY").accounts == []
    finally:
        stop()
        bot.deps.close()

    both = two_account_bot(
        tmp_path / "b", slack_api, ngrok, "  C0OPS: {actions: true}\n  C0LAB: {account: lab}"
    )
    try:
        assert [a.name for a in build_home(both.deps, "U0VIEW").accounts] == ["lab", "prod"]
        assert build_home(both.deps, "U0NOBODY").accounts == []
    finally:
        both.deps.close()
