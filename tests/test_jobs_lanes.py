"""bot.jobs lanes: an urgent job never waits for a normal thread or behind queued normal jobs,
on every queue backend (memory, the SQLite file, Redis). Nothing here measures time: each
test holds every normal thread inside a job, queues more normal jobs, and asserts what ran
while they were held (timeouts below only keep a broken build from hanging)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator

import pytest

from bot.jobs import Jobs, open_queues, start_consumer_threads

HANG_GUARD = 30.0  # seconds; only a broken build ever waits this long


@pytest.fixture(params=["memory", "sqlite", "redis"])
def jobs(request: pytest.FixtureRequest, tmp_path) -> Iterator[Jobs]:
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        queues = open_queues(redis_url=url, sqlite_path="")
    else:
        state = str(tmp_path / "state.sqlite3")
        queues = open_queues(redis_url=None, sqlite_path=state, memory=request.param == "memory")
    built = Jobs(queues)
    yield built
    built.close()


class Held:
    """Normal jobs that hold their thread until released, and what ran, in order."""

    def __init__(self, jobs: Jobs, threads: int) -> None:
        self.release = threading.Event()
        self.all_holding = threading.Barrier(threads + 1, timeout=HANG_GUARD)
        self.order: list[str] = []
        self._lock = threading.Lock()
        jobs.register("listing", self.listing)
        jobs.register("queued_listing", lambda payload: self.ran(f"queued {payload['n']}"))

    def ran(self, what: str) -> None:
        with self._lock:
            self.order.append(what)

    def listing(self, payload: dict) -> None:
        """Stands for a listing waiting for the non-urgent ngrok budget."""
        self.ran(f"holding {payload['n']}")
        self.all_holding.wait()
        assert self.release.wait(HANG_GUARD)


def hold_every_normal_thread(
    jobs: Jobs, threads: int, queued: int
) -> tuple[Held, Callable[[], None]]:
    held = Held(jobs, threads)
    stop = jobs.start_threads(workers=threads, urgent_workers=1)
    for n in range(threads):
        jobs.submit("listing", {"n": n})
    held.all_holding.wait()  # every normal thread is inside a listing now
    for n in range(queued):
        jobs.submit("queued_listing", {"n": n})
    return held, stop


def test_an_urgent_job_runs_while_every_normal_thread_is_held_and_normal_jobs_queue(jobs):
    approved = threading.Event()
    jobs.register("approve", lambda payload: approved.set(), lane="urgent")
    held, stop = hold_every_normal_thread(jobs, threads=2, queued=50)
    try:
        jobs.submit("approve", {"session": "ts_1"})
        assert approved.wait(HANG_GUARD), "the urgent job waited for a normal thread"
        assert sorted(held.order) == ["holding 0", "holding 1"]  # nothing queued started
        assert jobs.backlog("normal") == 50
    finally:
        held.release.set()
    try:
        assert jobs.wait_idle(HANG_GUARD)
    finally:
        stop()
    assert len(held.order) == 52 and jobs.backlog() == 0


def test_a_scheduled_urgent_job_runs_while_the_normal_lane_is_held(jobs):
    """An update's restart is scheduled (`later`); the urgent lane's own scheduler and
    threads run it, not the normal lane's."""
    restarted = threading.Event()
    jobs.register("finish_update", lambda payload: restarted.set(), lane="urgent")
    held, stop = hold_every_normal_thread(jobs, threads=2, queued=20)
    try:
        jobs.later(0.2, "finish_update", {"session": "ts_1"})
        assert restarted.wait(HANG_GUARD)
        assert jobs.backlog("normal") == 20 and len(held.order) == 2
    finally:
        held.release.set()
    try:
        assert jobs.wait_idle(HANG_GUARD)
    finally:
        stop()


def test_the_minutes_tick_runs_in_the_urgent_lane_and_submits_each_job_to_its_lane(jobs):
    jobs.register("recover_actions", lambda payload: None, lane="urgent")
    jobs.register("watch_keeper", lambda payload: None)
    jobs.every_minute("recover_actions")
    jobs.every_minute("watch_keeper")
    minute = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0, tzinfo=None)
    assert list(jobs.queues["normal"].read_periodic(minute)) == []
    (tick,) = jobs.queues["urgent"].read_periodic(minute)
    jobs.queues["urgent"].execute(tick)
    assert jobs.backlog("urgent") == 1 and jobs.backlog("normal") == 1
    assert jobs.lane_of("recover_actions") == "urgent" and jobs.lane_of("watch_keeper") == "normal"


def test_a_graceful_stop_lets_both_lanes_finish_what_they_run(jobs):
    """SIGTERM's path (huey's graceful stop): no lane starts a new job, and the stop returns
    only once the jobs running in both lanes have finished."""
    consumer = jobs.consumer(workers=1, urgent_workers=1)
    started = threading.Barrier(3, timeout=HANG_GUARD)
    finished: list[str] = []

    def running(payload: dict) -> None:
        started.wait()
        assert consumer.stop_flag.wait(HANG_GUARD)  # the stop has begun (both flags are set)
        finished.append(payload["lane"])

    jobs.register("normal_job", running)
    jobs.register("urgent_job", running, lane="urgent")
    jobs.submit("normal_job", {"lane": "normal"})
    jobs.submit("urgent_job", {"lane": "urgent"})
    jobs.submit("normal_job", {"lane": "never started"})
    for lane in (consumer.companion, consumer):
        start_consumer_threads(lane)
    started.wait()
    consumer.stop(graceful=True)
    assert sorted(finished) == ["normal", "urgent"]
    assert jobs.backlog("normal") == 1
