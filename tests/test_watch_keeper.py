"""The keeper restarts a watch chain that died, and only one keeper wins a race.

A chain dies when its scheduled `watch` job is lost: here the consumer threads are stopped
between jobs and the queue's schedule is flushed. The clock the bot reads is then moved past
the chain's grace, which is how an overdue chain looks a minute or more later.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import pytest

from commands.watch import CHAIN_PREFIX, JOB_WATCH, JOB_WATCH_KEEPER, load_state
from tests.watch_fixtures import Bot, start_bot


@pytest.fixture
def bot(tmp_path, slack_api, ngrok_api_factory):
    ngrok = ngrok_api_factory(sessions=6, seed=3, rate_limit=None)
    yield from start_bot(tmp_path, slack_api, ngrok, threads=False)


def scanned_after(bot: Bot, at: float, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (load_state(bot.deps.store, "default")[0].scanned_at or 0) <= at:
        assert time.monotonic() < deadline, "no scan"
        time.sleep(0.05)


def queued_watch_jobs(bot: Bot) -> list[dict[str, Any]]:
    """The payloads of the `watch` jobs waiting in the queue (not yet scheduled or run)."""
    huey = bot.deps.jobs.huey
    return [t.args[1] for t in huey.pending() if t.args and t.args[0] == JOB_WATCH]


def chain(bot: Bot) -> str:
    record = bot.deps.store.get_request(CHAIN_PREFIX + "default")
    assert record is not None
    return str(record["state"])


class RacingStore:
    """The real store, except that reading the chain record waits until `parties` readers
    have read it: every keeper sees the same old chain before any of them writes."""

    def __init__(self, store: Any, parties: int) -> None:
        self._store = store
        self._barrier = threading.Barrier(parties, timeout=10)

    def get_request(self, request_id: str) -> dict[str, Any] | None:
        record = self._store.get_request(request_id)
        if request_id.startswith(CHAIN_PREFIX):
            self._barrier.wait()
        return record

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_the_minutes_keeper_restarts_a_chain_whose_scheduled_job_was_lost(bot):
    jobs = bot.deps.jobs
    stop = jobs.start_threads(workers=2)
    try:
        jobs.submit(JOB_WATCH_KEEPER, {})  # as a consumer does when it starts
        scanned_after(bot, 0)
        deadline = time.monotonic() + 10
        while jobs.scheduled() == 0:  # the chain's next link
            assert time.monotonic() < deadline
            time.sleep(0.05)
        first = chain(bot)
    finally:
        stop()  # the consumer dies between two links...
    jobs.huey.storage.flush_schedule()  # ...and the next link is lost with it
    assert jobs.scheduled() == 0 and jobs.backlog() == 0
    jobs.run_now(JOB_WATCH_KEEPER, {})
    assert chain(bot) == first and queued_watch_jobs(bot) == []  # not overdue yet: left alone

    offset = [0.0]
    bot.deps.clock = lambda: time.time() + offset[0]
    offset[0] = 120.0  # past the chain's next_due + grace (30 s)
    minute = datetime.now().replace(second=0, microsecond=0)
    ticks = list(jobs.queues["urgent"].read_periodic(minute))
    assert len(ticks) == 1  # huey's every-minute task, which submits the keeper
    for tick in ticks:
        jobs.queues["urgent"].execute(tick)
    stop = jobs.start_threads(workers=2)
    try:
        scanned_after(bot, time.time() + 100)  # the new chain scanned (at the moved clock)
        assert chain(bot) != first
        deadline = time.monotonic() + 10
        while jobs.scheduled() == 0:  # and it goes on: its next link is scheduled
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        stop()


def race_two_keepers(bot: Bot) -> None:
    store = bot.deps.store
    bot.deps.store = RacingStore(store, 2)
    try:
        keepers = [
            threading.Thread(target=bot.deps.jobs.run_now, args=(JOB_WATCH_KEEPER, {}))
            for _ in range(2)
        ]
        for keeper in keepers:
            keeper.start()
        for keeper in keepers:
            keeper.join(15)
        assert not any(k.is_alive() for k in keepers)
    finally:
        bot.deps.store = store


def test_two_keepers_racing_start_one_chain(bot):
    race_two_keepers(bot)  # no chain yet: both try to create one
    (started,) = queued_watch_jobs(bot)
    first = chain(bot)
    assert started["chain"] == first
    bot.deps.jobs.huey.storage.flush_queue()  # that chain dies before its first link runs

    race_two_keepers(bot)  # not overdue yet: neither starts another
    assert queued_watch_jobs(bot) == [] and chain(bot) == first

    bot.deps.clock = lambda: time.time() + 120.0  # past next_due + grace (30 s)
    race_two_keepers(bot)  # both see the dead chain; one starts its successor
    (successor,) = queued_watch_jobs(bot)
    assert successor["chain"] == chain(bot) != first
