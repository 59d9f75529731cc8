"""bot.jobs: huey with JSON payloads; jobs run, fail loudly, wait, and outlive a process."""

from __future__ import annotations

import datetime as dt
import pickle
import threading

import pytest
from huey.registry import Message

from bot.jobs import Jobs, JsonSerializer, open_queues


@pytest.fixture
def memory_jobs():
    jobs = Jobs(open_queues(redis_url=None, sqlite_path="", memory=True))
    stop = jobs.start_threads(workers=2)
    yield jobs
    stop()


def test_messages_round_trip_as_json_with_their_datetimes():
    serializer = JsonSerializer()
    eta = dt.datetime(2026, 12, 1, 22, 0, 5)
    message = Message("id1", "ngrok_ops.job", eta, 0, 0, None, ["click", {"a": [1, "x"]}], {})
    raw = serializer.serialize(message)
    assert raw.startswith(b"{") and b"click" in raw
    assert serializer.deserialize(raw) == Message(
        "id1", "ngrok_ops.job", eta, 0, 0, None, ["click", {"a": [1, "x"]}], {}
    )


def test_payloads_that_are_not_plain_data_are_refused():
    with pytest.raises(TypeError, match="plain JSON"):
        JsonSerializer().serialize(Message("id", "t", None, 0, 0, None, [object()], {}))


def test_a_pickled_message_is_never_unpickled():
    """Whoever can write to the queue must not be able to run code in the bot."""
    evil = pickle.dumps(Message("id", "t", None, 0, 0, None, [], {}))
    with pytest.raises(ValueError):
        JsonSerializer().deserialize(evil)


def test_a_job_runs_and_a_failing_one_reports_to_its_error_handler(memory_jobs, caplog):
    done, reported = threading.Event(), []

    def broken(payload):
        raise RuntimeError("boom")

    memory_jobs.register("ok", lambda payload: done.set())
    memory_jobs.register("broken", broken, on_error=lambda p, e: reported.append((p, str(e))))
    memory_jobs.submit("broken", {"who": "U1"})
    memory_jobs.submit("ok", {})
    assert memory_jobs.wait_idle(10)
    assert done.is_set() and reported == [({"who": "U1"}, "boom")]
    assert "job broken failed" in caplog.text


def test_an_unregistered_job_is_a_programming_error(memory_jobs):
    with pytest.raises(KeyError, match="nobody"):
        memory_jobs.submit("nobody", {})


def test_a_scheduled_job_runs_after_its_delay(memory_jobs):
    ran = []
    memory_jobs.register("later", ran.append)
    memory_jobs.later(0.2, "later", {"n": 1})
    assert ran == []
    assert memory_jobs.wait_idle(10)
    assert ran == [{"n": 1}]


def test_queued_and_scheduled_jobs_outlive_the_process_that_made_them(tmp_path):
    """SQLite keeps them in a file: a new process (a new Jobs on the file) runs them."""
    state = str(tmp_path / "state.sqlite3")
    first = Jobs(open_queues(redis_url=None, sqlite_path=state))
    first.register("restart", lambda payload: None)
    first.submit("restart", {"session": "ts_1"})
    first.later(3600, "restart", {"session": "ts_2"})
    first.close()
    second = Jobs(open_queues(redis_url=None, sqlite_path=state))
    ran = []
    second.register("restart", ran.append)
    assert second.backlog() == 2
    stop = second.start_threads(workers=1)
    try:
        assert second.wait_idle(10)
    finally:
        stop()
    assert ran == [{"session": "ts_1"}]
    assert second.scheduled() == 1  # the one due in an hour waits in the schedule


def test_the_heartbeat_is_shared_through_the_queue(tmp_path):
    state = str(tmp_path / "state.sqlite3")
    writer = Jobs(open_queues(redis_url=None, sqlite_path=state), clock=lambda: 1234.5)
    reader = Jobs(open_queues(redis_url=None, sqlite_path=state))
    assert reader.last_beat() is None
    writer.beat()
    assert reader.last_beat() == 1234.5


def test_the_sqlite_queue_commits_without_an_fsync_each_but_in_wal(tmp_path):
    """Acks enqueue concurrently: synchronous=NORMAL in WAL keeps commits across a crash of
    any process without making every commit wait for a sync."""
    from bot.jobs import open_queues

    for huey in open_queues(redis_url=None, sqlite_path=str(tmp_path / "s.sqlite3")).values():
        connection = huey.storage.conn
        assert connection.execute("pragma synchronous").fetchone()[0] == 1  # NORMAL
        assert connection.execute("pragma journal_mode").fetchone()[0] == "wal"
