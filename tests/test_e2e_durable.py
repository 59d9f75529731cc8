"""Work that survives: what the bot promised is done after a deploy (SIGTERM) or a crash
(SIGKILL), exactly once, through the deployed shape (Procfile `web:`, which starts the job
consumer beside it) and the job queue in the SQLite file beside the state file."""

from __future__ import annotations

import json
import os
import signal

import psutil

from bot.slack.views.progress import is_working
from tests.bot_process import find_button
from tests.e2e_fixtures import ALICE, BOB, OPS, session_id_of, texts_of, wait_until


def posted_text(stack, needle: str) -> list[dict]:
    return [
        c.body for c in stack.slack.calls_to("chat.postMessage") if needle in json.dumps(c.body)
    ]


def test_an_updates_restart_survives_a_deploy_and_runs_once(stack_factory):
    """Update approved, SIGTERM within UPDATE_RESTART_DELAY, start again: the restart that
    completes the update is sent once and the thread is told."""
    stack = stack_factory(env={"UPDATE_RESTART_DELAY": "4"})
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"update {sid}")
    stack.reply(stack.click(find_button(prompt, "ngrok_approve")))
    wait_until(lambda: stack.action_posts(sid), what="the update POST")
    stack.bot.stop(signal.SIGTERM)  # a deploy, while the restart is still scheduled
    assert [p.path.rsplit("/", 1)[1] for p in stack.action_posts(sid)] == ["update"]
    stack.bot.start()
    wait_until(lambda: posted_text(stack, "to finish its update"), timeout=30, what="the restart")
    assert [p.path.rsplit("/", 1)[1] for p in stack.action_posts(sid)] == ["update", "restart"]
    (told,) = posted_text(stack, "to finish its update")
    assert told["channel"] == OPS and sid in texts_of(told)
    # In the thread of the update's one record, which is done only once the agent is back.
    (record,) = [
        c for c in stack.slack.calls_to("chat.postMessage")
        if c.body.get("text") == f"Update of {sid}: running"
    ]  # fmt: skip
    assert told["thread_ts"] == record.response["ts"]
    wait_until(
        lambda: any(
            c.body.get("text", "").startswith(f"Update of {sid}: done, back as ts_")
            for c in stack.slack.calls_to("chat.update")
        ),
        what="the record moved to done",
    )


def test_a_crash_while_sending_is_reported_once_and_finishes_the_request(stack_factory):
    """SIGKILL of the whole bot while a two-person stop's POST is in flight; ngrok applies it.
    Started again, recovery reads the session, reports the outcome once in the thread and
    to the requester, and moves the request from "running" to "done"; no POST is re-sent."""
    stack = stack_factory(env={"ACTION_RECOVERY_SECONDS": "1"})
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"stop {sid}")
    stack.reply(stack.click(find_button(prompt, "ngrok_ask_approval")))
    request = stack.posted("chat.postMessage", predicate=lambda c: sid in json.dumps(c.body))[0]
    stack.ngrok.inject_fault("timeout", method="POST", delay=6.0)  # held, then applied
    stack.click(find_button(request.body, "ngrok_tp_approve"), user=BOB, ephemeral=False)
    running = lambda: [  # noqa: E731
        c for c in stack.slack.calls_to("chat.update") if "state_running" in json.dumps(c.body)
    ]
    wait_until(running, what="the request moving to running")
    wait_until(lambda: "sending" in _action_states(stack), what="the POST being sent")
    # Killed only once ngrok holds the POST, so ngrok surely applies it (a kill between the
    # "sending" record and the request is the other case: recovery finds the agent online).
    wait_until(lambda: stack.ngrok.in_flight() >= 1, what="ngrok holding the POST")
    os.killpg(stack.bot.process.pid, signal.SIGKILL)  # web, master and consumer at once
    stack.bot.process.wait(10)
    wait_until(lambda: stack.action_posts(sid), timeout=15, what="ngrok applying the stop")
    assert sid not in stack.ngrok.session_ids()
    stack.bot.start()
    wait_until(
        lambda: posted_text(stack, "The bot restarted while sending"), timeout=30,
        what="the recovered outcome",
    )  # fmt: skip
    done = lambda: [  # noqa: E731
        c for c in stack.slack.calls_to("chat.update") if "state_done" in json.dumps(c.body)
    ]
    wait_until(done, what="the request finished")
    in_thread = [b for b in posted_text(stack, "The bot restarted while sending") if b["channel"]]
    assert len([b for b in in_thread if b["channel"] == OPS]) == 1
    assert "took effect" in texts_of(in_thread[0])
    told = stack.slack.calls_to("chat.postEphemeral")
    assert any(c.body["user"] == ALICE and "took effect" in json.dumps(c.body) for c in told)
    assert len(stack.action_posts(sid)) == 1  # never re-sent
    events = [r["event"] for r in stack.bot.audit_records()]
    assert events.count("recovered") == 1


def _action_states(stack) -> list[str]:
    """The phases of the bot's action records, read from its SQLite state file."""
    import sqlite3

    path = stack.bot.env["STATE_PATH"]
    with sqlite3.connect(path, timeout=5) as conn:
        rows = conn.execute(
            "SELECT record FROM requests WHERE request_id LIKE 'action:%'"
        ).fetchall()
    return [json.loads(row[0]).get("state") for row in rows]


def test_a_reply_lost_with_a_killed_consumer_is_told_once_in_place(stack_factory):
    """SIGKILL of the job consumer while `/ngrok sessions` waits on a slow ngrok: huey loses
    the job, the supervisor starts a new consumer, and its start-up recovery replaces the
    "working…" placeholder with one sentence instead of leaving it forever."""
    stack = stack_factory(ngrok={"latency": 5.0, "rate_limit": None})
    _, key = stack.slash("sessions region=eu")
    wait_until(lambda: stack.ngrok.in_flight() >= 1, what="the listing waiting on ngrok")
    parent = psutil.Process(stack.bot.process.pid)
    consumers = [p for p in parent.children(recursive=True) if "jobs" in " ".join(p.cmdline())]
    assert consumers, [p.cmdline() for p in parent.children(recursive=True)]
    for child in consumers:
        os.kill(child.pid, signal.SIGKILL)
    told = stack.reply(key, timeout=60)
    text = texts_of(told)
    assert "The bot restarted while answering `/ngrok sessions region=eu`" in text, text
    assert told["replace_original"] is True
    # The new consumer recovered before it took new work, so once it answers, a second
    # telling could only come from a recoverer that lost the compare-and-set.
    assert "ngrok" in texts_of(stack.ask("help"))
    answers = [c for c in stack.slack.calls_to("response_url", key=key) if not is_working(c.body)]
    assert len(answers) == 1, [c.body for c in answers]
