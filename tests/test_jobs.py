"""bot.jobs: errors are reported, waits end at shutdown, and nothing promised vanishes silently."""

from __future__ import annotations

import logging
import threading
import time

from bot.jobs import Jobs


def test_errors_reach_on_error_and_the_pool_keeps_working():
    jobs, errors, done = Jobs(max_workers=2), [], threading.Event()

    def broken() -> None:
        raise ValueError("boom")

    jobs.submit(broken, on_error=errors.append)
    jobs.submit(done.set)
    assert done.wait(5) and jobs.wait_idle(5)
    assert [type(e) for e in errors] == [ValueError]
    jobs.shutdown(timeout=1)


def test_a_paused_job_is_woken_by_shutdown():
    jobs, started, ended = Jobs(max_workers=1), threading.Event(), []

    def waits() -> None:
        started.set()
        jobs.pause(60)
        ended.append("not reached")

    jobs.submit(waits)
    assert started.wait(5)
    began = time.monotonic()
    jobs.shutdown(timeout=5)
    assert time.monotonic() - began < 5 and ended == []


def test_work_refused_or_cancelled_at_shutdown_is_reported(caplog):
    jobs, refused = Jobs(max_workers=1), []

    def finish_update() -> None:
        raise AssertionError("a cancelled timer must not run")

    jobs.later(30, finish_update)
    with caplog.at_level(logging.WARNING, logger="ngrok_ops.jobs"):
        jobs.shutdown(timeout=1)
    assert "cancelled scheduled job" in caplog.text and "finish_update" in caplog.text
    jobs.submit(print, on_error=refused.append)
    assert len(refused) == 1
