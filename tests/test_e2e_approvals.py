"""What only real processes show: the Procfile's `web:` with two gunicorn workers sharing
the SQLite file, two web processes sharing Redis, and the `worker:` (Socket Mode) line with
its SIGTERM drain. Each runs one approval exactly once. Behaviour of one handler is tested
in process under tests/commands/."""

from __future__ import annotations

import json
import signal
from functools import partial

from tests.bot_process import BotProcess, SlackSender, find_button
from tests.e2e_fixtures import ALICE, OPS, assert_one_post, at_once, session_id_of, wait_until


def test_double_approve_sent_to_two_processes_sharing_redis(stack_factory, redis_url, tmp_path):
    stack = stack_factory(env={"REDIS_URL": redis_url})
    second = BotProcess({**stack.bot.env, "PORT": ""}, log_dir=tmp_path).start()
    try:
        sid = session_id_of("linux", stack.ngrok)
        approve = find_button(stack.ask(f"restart {sid}"), "ngrok_approve")
        senders = [stack.sender, SlackSender(second.events_url)]
        url = stack.slack.response_url()
        at_once(
            *(
                partial(sender.click, approve, user=ALICE, channel=OPS, response_url=url)
                for sender in senders * 3
            )
        )
        assert_one_post(stack, sid)
    finally:
        second.stop()


def test_socket_mode_worker_runs_the_whole_flow(stack_factory):
    stack = stack_factory(kind="worker")
    stack.slack.wait_socket_connected(timeout=30)
    sid = session_id_of("linux", stack.ngrok)
    url = stack.slack.response_url()
    payload = {
        "token": "x", "team_id": "T111", "channel_id": OPS, "user_id": ALICE, "command": "/ngrok",
        "text": f"restart {sid}", "api_app_id": "A111", "response_url": url, "trigger_id": "1.2",
    }  # fmt: skip
    ack = stack.slack.send_envelope("slash_commands", payload)
    assert ack["envelope_id"]
    prompt = stack.reply(url.rsplit("/", 1)[1])
    approve = find_button(prompt, "ngrok_approve")
    click_url = stack.slack.response_url()
    action = {key: approve[key] for key in ("action_id", "block_id", "text", "value", "type")}
    click = stack.sender.block_actions(action, user=ALICE, channel=OPS, response_url=click_url)
    stack.slack.send_envelope("interactive", click)
    stack.reply(click_url.rsplit("/", 1)[1])
    assert_one_post(stack, sid, settle=0.3)
    record = stack.posted("chat.postMessage", predicate=lambda c: sid in json.dumps(c.body))
    assert record[0].body["channel"] == OPS
    stack.bot.stop(signal.SIGTERM)  # what a platform sends: a clean exit, jobs drained
    assert stack.bot.process.returncode == 0


def test_two_gunicorn_workers_sharing_the_sqlite_file_run_an_approval_once(stack_factory):
    stack = stack_factory(env={"WEB_CONCURRENCY": "2"})
    wait_until(lambda: stack.bot.stderr().count("Booting worker") >= 2, what="two workers")
    sid = session_id_of("linux", stack.ngrok)
    approve = find_button(stack.ask(f"restart {sid}"), "ngrok_approve")
    at_once(*(partial(stack.click, approve) for _ in range(6)))
    assert_one_post(stack, sid)
