"""The fleet run's planner, ETA and preview/progress rendering, in process."""

from __future__ import annotations

import json

import pytest
from slack_sdk.models.blocks import Block

from bot.ngrok.models import TunnelSession
from bot.slack import blocks as bk
from bot.slack.views.fleet import (
    AgentOutcome,
    Failure,
    RunLine,
    RunProgress,
    render_batch_outcomes,
    render_run_preview,
    render_run_progress,
    render_runs,
)
from commands.fleet_plan import (
    estimate_seconds,
    plan_run,
    requests_needed,
    run_rate,
    split_batches,
)
from commands.grammar import RunOptions


def agent(n: int, **fields: str) -> TunnelSession:
    base = {"id": f"ts_{n:025d}", "os": "linux", "agent_version": "3.20.0", "region": "eu",
            "transport": "ngrok/2", "metadata": json.dumps({"host": f"edge-{n}"})}  # fmt: skip
    return TunnelSession.from_api({**base, **fields})


def valid(message: dict) -> str:
    for raw in message["blocks"]:
        block = Block.parse(raw)
        assert block is not None
        block.validate_json()
    return message["text"] + json.dumps(message["blocks"])


def test_planner_skips_windows_ssh_and_up_to_date_and_batches_after_the_canary():
    fleet = [agent(i) for i in range(10)]
    fleet += [
        agent(10, os="windows"),
        agent(11, transport="ssh"),
        agent(12, agent_version="3.26.1"),
    ]
    plan = plan_run("update", fleet, fleet, RunOptions(canary=2, batch=3))
    reasons = sorted(s.reason for s in plan.skipped)
    assert len(plan.targets) == 10 and len(reasons) == 3
    assert any("Windows" in r for r in reasons) and any("SSH" in r for r in reasons)
    assert any("3.26.1" in r for r in reasons)
    assert [len(b) for b in plan.batches] == [2, 3, 3, 2]
    restart = plan_run("restart", fleet, fleet, RunOptions())
    assert len(restart.targets) == 11  # up-to-date agents restart; windows and ssh do not
    stop = plan_run("stop", fleet, fleet, RunOptions())
    assert len(stop.targets) == 13 and stop.batch >= 1


def test_eta_is_requests_over_the_non_urgent_rate_plus_waits():
    batches = split_batches([agent(i) for i in range(100)], 1, 33)
    assert requests_needed("update", batches) == 200 + 1 + 1 + 1 + 1
    assert requests_needed("stop", batches) == 100
    assert run_rate(120, 60.0) == 108 / 60
    eta = estimate_seconds("update", batches, max_requests=120, per_seconds=60, update_delay=15)
    # the canary waits its update delay and a look; each batch of 33 sends its updates in
    # 33 / 1.8 = 18.3 s while the batch before comes back, which covers the 15 s; the last
    # batch waits one look
    assert round(eta) == round(204 / 1.8 + 16 + 1)
    small = split_batches([agent(i) for i in range(11)], 1, 5)
    eta = estimate_seconds("update", small, max_requests=120, per_seconds=60, update_delay=15)
    assert round(eta, 3) == round(25 / 1.8 + 16 + 2 * (15 - 5 / 1.8) + 1, 3)  # 22 POSTs, 3 looks
    restart = estimate_seconds(
        "restart", batches, max_requests=120, per_seconds=60, update_delay=15
    )
    assert round(restart, 3) == round(104 / 1.8 + 4 * 1.0, 3)


def test_preview_and_progress_render_valid_escaped_messages():
    fleet = [agent(i, metadata=json.dumps({"host": f"<!channel>-{i}"})) for i in range(30)]
    fleet.append(agent(99, os="windows"))
    plan = plan_run("restart", fleet, fleet, RunOptions(canary=1, batch=10))
    from bot.slack.views.fleet import RunPreview

    preview = RunPreview(
        run_id="abc123", action="restart", query_text="os=linux region=eu", count=30,
        breakdown={"Regions": {"eu": 30}, "OS": {"linux": 30}}, sample_hosts=["<!channel>-1"],
        skipped={"Windows agents cannot restart themselves": 1}, canary=plan.canary,
        batch=plan.batch, batches=len(plan.batches), max_failures=None, requests=33,
        eta_seconds=30.5, update_delay=15,
    )  # fmt: skip
    text = valid(render_run_preview(preview, approve_value="t", cancel_value="t",
                                    two_person=False, ttl_text="10 minutes"))  # fmt: skip
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "canary of 1" in text and "ETA 30 s" in text and "1 skipped" in text
    progress = RunProgress(
        run_id="abc123", action="restart", query_text="os=linux", state="running",
        requester="U0ALICE", approver="U0BOB", total=30, done=11, failed=1, skipped=1,
        remaining=18, batch_index=2, batches=4, eta_seconds=12,
        failures=[Failure("<b>x</b>", "ts_1", "ngrok said <no>")],
    )  # fmt: skip
    text = valid(render_run_progress(progress))
    assert "ngrok_run_pause" in text and "ngrok_run_cancel" in text and "<b>" not in text
    done = valid(render_run_progress(RunProgress(**{**progress.__dict__, "state": "done"})))
    assert "ngrok_run_pause" not in done
    outcomes = [AgentOutcome(f"edge-{i}", f"ts_{i}", "done", "back as ts_x") for i in range(60)]
    assert "and 20 more" in valid(render_batch_outcomes("abc123", "batch 1", outcomes))


def test_jobs_lines_carry_a_link_button_only_where_slack_gave_a_permalink():
    link = "https://acme.slack.com/archives/C0OPS/p1700000000000100"
    lines = [
        RunLine("abc123", "restart", "running", "os=<!channel>", 30, "U0ALICE", link, "done 1"),
        RunLine("def456", "stop", "done", "", 3, "U0BOB", None, "done 3"),
    ]
    message = render_runs(lines)
    text = valid(message)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    first, second = message["blocks"][1:]
    assert first["accessory"] == {
        "type": "button", "action_id": "ngrok_run_link", "value": "abc123", "url": link,
        "text": {"type": "plain_text", "text": "Progress", "emoji": True},
    }  # fmt: skip
    assert "accessory" not in second


@pytest.mark.parametrize(
    "url",
    [
        "http://acme.slack.com/x",
        "javascript:alert(1)",
        "https://a.b/<!here>",
        "https://" + "a" * 3000,
    ],
)
def test_a_link_button_takes_only_a_plain_https_url(url):
    with pytest.raises(ValueError):
        bk.button("Progress", "ngrok_run_link", "v", url=url)


def test_the_preview_shows_plan_menus_with_the_current_choice_and_validates():
    from bot.slack.views.fleet import PlanMenu, RunPreview, plan_choice_label

    preview = RunPreview(
        run_id="abc123", action="update", query_text="os=linux", count=40,
        breakdown={"OS": {"linux": 40}}, sample_hosts=[], skipped={}, canary=2, batch=10,
        batches=5, max_failures=None, requests=90, eta_seconds=100, update_delay=15,
    )  # fmt: skip
    menus = [
        PlanMenu("canary", [(plan_choice_label("canary", n), f"c{n}") for n in (1, 2)], 1),
        PlanMenu("batch", [(plan_choice_label("batch", n), f"b{n}") for n in (5, 10)], 1),
        PlanMenu("max_failures", [(plan_choice_label("max_failures", n), f"m{n}")
                                  for n in (None, 1, 3)], 0),
    ]  # fmt: skip
    message = render_run_preview(preview, approve_value="t", cancel_value="t",
                                 two_person=False, ttl_text="4 minutes", menus=menus)  # fmt: skip
    valid(message)
    (block,) = [b for b in message["blocks"] if b.get("block_id") == "plan_options"]
    selects = block["elements"]
    assert [s["action_id"] for s in selects] == [
        "ngrok_run_canary", "ngrok_run_batch", "ngrok_run_max_failures",
    ]  # fmt: skip
    chosen = [s["initial_option"] for s in selects]
    assert [c["text"]["text"] for c in chosen] == [
        "Canary: 2 agents", "Batches of 10", "Stop at the first failing batch",
    ]  # fmt: skip
    assert all(c in s["options"] for c, s in zip(chosen, selects, strict=True))
    assert plan_choice_label("max_failures", 1) == "Stop after more than 1 failure"
    index = message["blocks"].index(block)
    assert message["blocks"][index + 1]["block_id"] == "run"  # the menus sit above Approve
    assert "plan_options" not in json.dumps(
        render_run_preview(preview, approve_value="t", cancel_value="t", two_person=True,
                           ttl_text="4 minutes")
    )  # fmt: skip
