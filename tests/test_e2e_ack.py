"""The ack never waits for ngrok: with the ngrok API stalled, 50 slash commands sent at once
all get their HTTP 200 while ngrok has not answered a single one of the bot's calls."""

from __future__ import annotations

import threading
from collections import Counter

from tests.e2e_fixtures import wait_until

STALL = 5.0  # seconds the ngrok stand-in takes per request: far longer than an ack may (3 s)


def test_fifty_concurrent_commands_are_acked_while_ngrok_is_stalled(stack_factory):
    stack = stack_factory(ngrok={"latency": STALL, "rate_limit": None})
    statuses: list[int] = []
    lock = threading.Lock()

    def fire() -> None:
        response, _ = stack.slash("sessions")
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=fire) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=STALL / 2)
    assert statuses == [200] * 50
    answered = [r for r in stack.ngrok.log() if r.status == 200]
    assert answered == [], "an ack waited for an ngrok answer"
    # The work itself went on after the acks: ngrok answers (the stand-in logs a request
    # when its answer is ready) and the replies reach the response URLs.
    wait_until(lambda: stack.ngrok.log(), timeout=STALL * 3, what="ngrok calls after the acks")
    stack.slack.wait_for("response_url", timeout=STALL * 3)


def test_the_supervised_consumer_yields_the_cpu_to_the_web_process(stack_factory):
    """On a 2-core machine the consumer rendering a burst of replies must not slow the acks:
    it runs JOBS_NICENESS (default 10) below the web process."""
    import psutil

    stack = stack_factory()
    web = psutil.Process(stack.bot.process.pid)
    wait_until(
        lambda: [p for p in web.children(recursive=True) if " jobs" in " ".join(p.cmdline())],
        timeout=20, what="the job consumer",
    )  # fmt: skip
    (consumer,) = [p for p in web.children(recursive=True) if " jobs" in " ".join(p.cmdline())]
    # the normal lane's 16 threads yield; the urgent lane's 4, the scheduler and the main
    # thread keep the web process's priority (Linux keeps nice per thread)
    lowered = min(19, web.nice() + 10)

    def nices() -> Counter[int]:
        return Counter(psutil.Process(t.id).nice() for t in consumer.threads())

    # A worker thread exists a moment before its start-up hook lowers it.
    wait_until(lambda: nices()[lowered] >= 16, timeout=20, what="the normal lane lowered")
    seen = nices()
    assert seen[lowered] == 16
    assert seen[web.nice()] >= 4 + 1


def test_slack_gets_its_200_only_once_the_command_is_queued(stack_factory):
    """The served app runs its listener before answering (process_before_response): while
    the queue cannot take the job (this test holds its write lock), Slack has no 200 yet;
    once it can, the 200 comes and the job is in the queue. Bolt's other way acks at once and
    enqueues afterwards, so a crash in between would lose a command Slack saw acknowledged."""
    import sqlite3

    from bot.jobs import Jobs, open_queues
    from bot.queue_file import queue_path

    stack = stack_factory(env={"JOBS_CONSUMER": "separate"})
    state = stack.bot.env["STATE_PATH"]
    queue = Jobs(open_queues(redis_url=None, sqlite_path=state))
    before = queue.backlog()
    lock = sqlite3.connect(queue_path(state), isolation_level=None)
    lock.execute("begin exclusive")
    answered: list[int] = []
    sender = threading.Thread(
        target=lambda: answered.append(stack.slash("sessions")[0].status_code)
    )
    sender.start()
    sender.join(1.0)
    held = list(answered)
    lock.execute("commit")
    sender.join(10)
    assert held == []  # no 200 while the job could not be queued
    assert answered == [200]
    assert queue.backlog() == before + 1
