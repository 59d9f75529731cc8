"""Fleet runs end to end through the deployed shape: preview, approval, canary and batches,
progress edited in place, pause / resume / cancel, two-person, a killed consumer."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter

import psutil

from tests.bot_process import find_button, find_select
from tests.e2e_fixtures import ALICE, BOB, MALLORY, OPS, TWO_PERSON_CONFIG, texts_of, wait_until

FAST = {"UPDATE_RESTART_DELAY": "0.3"}


def progress_edits(stack, run_state: str) -> list:
    return [
        c for c in stack.slack.calls_to("chat.update") if f'"run_{run_state}"' in json.dumps(c.body)
    ]


def final_progress(stack, state: str = "done", timeout: float = 90.0) -> dict:
    wait_until(lambda: progress_edits(stack, state), timeout=timeout, what=f"run {state}")
    body = progress_edits(stack, state)[-1].body
    return body


def linux_targets(stack) -> list[str]:
    ids = []
    for sid in stack.ngrok.session_ids():
        raw = stack.ngrok.session(sid) or {}
        if raw.get("os") == "linux" and raw.get("transport") != "ssh":
            ids.append(sid)
    return ids


def test_a_filter_run_with_canary_and_batches(stack_factory):
    stack = stack_factory(env=FAST)
    targets = linux_targets(stack)
    preview = stack.ask("restart os=linux canary=1 batch=4")
    text = texts_of(preview)
    assert f"Restart {len(targets)} agents" in text and "canary of 1" in text and "ETA" in text
    # The batch typed as 4 becomes 5 in the preview's menu: re-planned and replaced in place.
    changed = stack.reply(stack.pick(find_select(preview, "ngrok_run_batch"), "Batches of 5"))
    assert changed["replace_original"] is True
    assert f"Restart {len(targets)} agents" in changed["text"]
    assert "batch(es) of up to 5" in texts_of(changed)
    stale = stack.reply(stack.click(find_button(preview, "ngrok_run_approve")))
    assert "plan was changed since" in texts_of(stale)
    stack.click(find_button(changed, "ngrok_run_approve"))
    done = final_progress(stack)
    assert f"*Done* {len(targets)}" in texts_of(done) and "*Failed* 0" in texts_of(done)
    posts = [r.path for r in stack.action_posts()]
    assert sorted(p.split("/")[2] for p in posts) == sorted(targets)  # each exactly once
    assert all(p.endswith("/restart") for p in posts)
    thread = [c for c in stack.slack.calls_to("chat.postMessage") if "Run `" in json.dumps(c.body)]
    assert any("canary" in json.dumps(c.body) for c in thread)
    assert all(c.body.get("thread_ts") for c in thread)
    assert len(thread) == 1 + -(-(len(targets) - 1) // 5)  # the canary, then batches of 5
    audit = [r for r in stack.bot.audit_records() if r.get("event") == "run"]
    assert audit and audit[0]["done"] == len(targets)
    jobs = stack.ask("jobs")
    assert "Done" in texts_of(jobs) and "restart of" in texts_of(jobs)
    link = find_button(jobs, "ngrok_run_link")
    assert "/archives/" in link["url"]
    url = stack.slack.response_url()
    opened = stack.sender.click(link, user=ALICE, channel=OPS, response_url=url)
    assert (opened.status_code, opened.text) == (200, "")  # acked, nothing else
    assert "run of" in texts_of(stack.ask("audit"))


def test_update_skips_windows_ssh_and_up_to_date_agents(stack_factory):
    stack = stack_factory(env=FAST)
    preview = texts_of(stack.ask("update all"))
    assert "Windows agents cannot restart themselves" in preview
    assert "SSH sessions cannot be restarted or updated" in preview
    assert "the newest version seen in the fleet" in preview
    stack.click(find_button(stack.ask("update all canary=2 batch=10 max_failures=3"),
                            "ngrok_run_approve"))  # fmt: skip
    done = final_progress(stack)
    assert "*Failed* 0" in texts_of(done)
    updates = [r for r in stack.action_posts() if r.path.endswith("/update")]
    restarts = [r for r in stack.action_posts() if r.path.endswith("/restart")]
    assert len(updates) == len(restarts) and len({r.path for r in updates}) == len(updates)
    versions = {(stack.ngrok.session(s) or {}).get("agent_version") for s in linux_targets(stack)}
    assert versions == {"3.26.1"}


def test_two_person_run_and_rights_at_the_click(stack_factory):
    stack = stack_factory(config=TWO_PERSON_CONFIG, env=FAST)
    preview = stack.ask("restart os=darwin")
    assert "second person" in texts_of(preview)
    stack.reply(stack.click(find_button(preview, "ngrok_run_ask")))
    request = stack.posted(
        "chat.postMessage", predicate=lambda c: "asks for a rolling" in json.dumps(c.body)
    )[0]
    approve = find_button(request.body, "ngrok_run_tp_approve")
    own = stack.click(approve, ephemeral=False)
    assert "someone else must approve" in texts_of(stack.reply(own))
    stack.click(approve, user=BOB, ephemeral=False)
    done = final_progress(stack)
    assert f"<@{BOB}>" in texts_of(done)
    assert stack.action_posts()


def test_pause_resume_and_cancel(stack_factory):
    stack = stack_factory(env=FAST, ngrok={"restart_delay": 1.0})
    preview = stack.ask("restart os=linux canary=1 batch=2")
    stack.click(find_button(preview, "ngrok_run_approve"))
    running = stack.posted(
        "chat.postMessage", predicate=lambda c: '"run_running"' in json.dumps(c.body)
    )[0]
    pause = find_button(running.body, "ngrok_run_pause")
    refused = stack.click(pause, user=MALLORY, ephemeral=False)
    assert "Only the person who asked" in texts_of(stack.reply(refused))
    stack.click(pause, ephemeral=False)
    paused = final_progress(stack, "paused", timeout=30)
    settled = len(stack.action_posts())
    time.sleep(3)
    assert len(stack.action_posts()) <= settled + 2  # in flight finished, nothing new
    frozen = len(stack.action_posts())
    time.sleep(2)
    assert len(stack.action_posts()) == frozen
    stack.click(find_button(paused, "ngrok_run_resume"), ephemeral=False)
    wait_until(lambda: len(stack.action_posts()) > frozen, timeout=30, what="resumed POSTs")
    latest = progress_edits(stack, "running")[-1].body
    stack.click(find_button(latest, "ngrok_run_cancel"), ephemeral=False)
    cancelled = final_progress(stack, "cancelled", timeout=60)
    after = len(stack.action_posts())
    time.sleep(3)
    assert len(stack.action_posts()) == after
    assert after < len(linux_targets(stack)) + 5
    assert "Cancelled" in texts_of(cancelled)


def test_killed_consumer_resumes_without_duplicate_posts(stack_factory):
    stack = stack_factory(env=FAST, ngrok={"restart_delay": 0.5})
    preview = stack.ask("update os=linux canary=1 batch=3")
    stack.click(find_button(preview, "ngrok_run_approve"))
    wait_until(lambda: len(stack.action_posts()) >= 4, timeout=60, what="some POSTs")
    parent = psutil.Process(stack.bot.process.pid)
    consumers = [p for p in parent.children(recursive=True) if "jobs" in " ".join(p.cmdline())]
    assert consumers, [p.cmdline() for p in parent.children(recursive=True)]
    for child in consumers:
        os.kill(child.pid, signal.SIGKILL)
    done = final_progress(stack, timeout=180)
    assert "*Failed* 0" in texts_of(done)
    counts = Counter(r.path for r in stack.action_posts())
    assert max(counts.values()) == 1, counts


def outdated_linux_targets(stack) -> list[str]:
    """The run's targets in the planner's order (by id): linux agents not on the newest
    version."""
    newest = "3.26.1"
    ids = [
        s
        for s in linux_targets(stack)
        if (stack.ngrok.session(s) or {}).get("agent_version") != newest
    ]
    return sorted(ids)


def post_index(stack, session_id: str, action: str) -> int:
    paths = [r.path for r in stack.action_posts()]
    return paths.index(f"/tunnel_sessions/{session_id}/{action}")


def test_next_batch_updates_go_out_while_a_batch_comes_back_and_cancel_leaves_them(stack_factory):
    stack = stack_factory(env=FAST, ngrok={"restart_delay": 8.0})
    targets = outdated_linux_targets(stack)
    canary, first, second = targets[0], targets[1:3], targets[3:5]
    online = len(stack.ngrok.session_ids())
    preview = stack.ask("update os=linux canary=1 batch=2")
    stack.click(find_button(preview, "ngrok_run_approve"))
    wait_until(
        lambda: all(f"/tunnel_sessions/{s}/update" in {r.path for r in stack.action_posts()}
                    for s in second),
        timeout=90, what="the second batch's updates",
    )  # fmt: skip
    assert len(stack.ngrok.session_ids()) == online - 2  # the first batch is not back yet
    posts = {r.path for r in stack.action_posts()}
    assert not any(f"/tunnel_sessions/{s}/restart" in posts for s in second)
    # nothing went ahead of the canary: the first batch's updates follow the canary's restart
    assert min(post_index(stack, s, "update") for s in first) > post_index(stack, canary, "restart")
    # the second batch's updates went out after the first batch's restarts, while it came back
    assert min(post_index(stack, s, "update") for s in second) > max(
        post_index(stack, s, "restart") for s in first
    )
    latest = progress_edits(stack, "running")[-1].body
    stack.click(find_button(latest, "ngrok_run_cancel"), ephemeral=False)
    cancelled = texts_of(final_progress(stack, "cancelled", timeout=60))
    assert "2 agent(s) of the next batch took the update but were not restarted" in cancelled
    time.sleep(2)
    posts = {r.path for r in stack.action_posts()}
    assert not any(f"/tunnel_sessions/{s}/restart" in posts for s in second)


def test_a_failing_batch_sends_nothing_ahead_and_stops_the_run(stack_factory):
    stack = stack_factory(env=FAST, ngrok={"restart_delay": 0.5})
    targets = outdated_linux_targets(stack)
    first, second = targets[1:3], targets[3:5]
    stack.ngrok.set_remote_management(first[0], False)  # its update is refused
    preview = stack.ask("update os=linux canary=1 batch=2")
    stack.click(find_button(preview, "ngrok_run_approve"))
    stopped = texts_of(final_progress(stack, "stopped", timeout=90))
    assert "*Failed* 1" in stopped
    posts = {r.path for r in stack.action_posts()}
    assert not any(s in path for s in second for path in posts)  # not even an update
    assert f"/tunnel_sessions/{first[1]}/restart" in posts
