"""bot.queue_file: group-committed enqueues keep every row, once, and fail loudly together;
consumers in several processes (here: several storages on one file, each with its own
connection and lock, as processes have) claim every task and every due schedule entry once."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bot.queue_file import _CLAIM_SCHEDULED, _CLAIM_TASK, QueueFile, queue_path


def _rows(path: str) -> list[tuple[str, bytes]]:
    """What another connection sees: only committed rows."""
    with contextlib.closing(sqlite3.connect(path)) as reader:
        rows = reader.execute("select queue, data from task order by id").fetchall()
    return [(queue, bytes(data)) for queue, data in rows]


def _enqueue_together(path: str, count: int, monkeypatch) -> tuple[QueueFile, list[int]]:
    """`count` threads enqueue at once; each checks that its row is committed when its call
    returns. Returns the storage and the size of every group written."""
    storage = QueueFile("lane", filename=path)
    groups: list[int] = []
    write = storage._write

    def counted(group):
        groups.append(len(group))
        write(group)

    monkeypatch.setattr(storage, "_write", counted)
    go = threading.Barrier(count)
    committed: list[bool] = []

    def one(i: int) -> None:
        go.wait()
        storage.enqueue(f"job-{i}".encode())
        # Returned, so the row must be visible to anyone reading the file now.
        committed.append((("lane", f"job-{i}".encode())) in _rows(path))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    rows = _rows(path)
    assert sorted(data for _, data in rows) == sorted(f"job-{i}".encode() for i in range(count))
    assert committed == [True] * count
    assert sum(groups) == count
    return storage, groups


def test_concurrent_enqueues_are_each_committed_once_in_fewer_transactions(tmp_path, monkeypatch):
    storage, groups = _enqueue_together(str(tmp_path / "q.sqlite3"), 50, monkeypatch)
    assert len(groups) < 50  # some rows shared a transaction
    assert storage.dequeue() is not None  # huey still reads what was written


def test_a_burst_bigger_than_one_statement_is_written_in_several_groups(tmp_path, monkeypatch):
    monkeypatch.setattr("bot.queue_file._ROWS_PER_INSERT", 4)
    _, groups = _enqueue_together(str(tmp_path / "q.sqlite3"), 30, monkeypatch)
    assert max(groups) <= 4 and len(groups) >= 8


def test_every_caller_of_a_failed_group_hears_the_error_and_nothing_is_written(tmp_path):
    path = str(tmp_path / "q.sqlite3")
    storage = QueueFile("lane", filename=path, timeout=0.05)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("begin exclusive")  # nobody else can write until it ends
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            storage.enqueue(f"job-{i}".encode())
        except sqlite3.OperationalError as error:
            errors.append(error)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    holder.execute("rollback")

    assert len(errors) == 10
    assert all("locked" in str(error) for error in errors)
    assert _rows(path) == []
    storage.enqueue(b"after")  # the storage works again once the lock is gone
    assert _rows(path) == [("lane", b"after")]


def test_an_interrupted_leader_leaves_no_caller_believing_its_row_was_queued(tmp_path):
    storage = QueueFile("lane", filename=str(tmp_path / "q.sqlite3"))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    storage.db = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        storage.enqueue(b"job")
    assert storage._waiting == []


def test_consumers_in_several_processes_take_each_task_exactly_once(tmp_path):
    path = str(tmp_path / "q.sqlite3")
    producer = QueueFile("lane", filename=path)
    expected = [f"early-{i}".encode() for i in range(300)]
    for data in expected:
        producer.enqueue(data)
    consumers = [QueueFile("lane", filename=path) for _ in range(3)]
    taken: list[bytes] = []
    taken_lock = threading.Lock()
    late = [f"late-{i}".encode() for i in range(200)]
    deadline = time.monotonic() + 60

    def consume(storage: QueueFile) -> None:
        while time.monotonic() < deadline:
            with taken_lock:
                if len(taken) >= len(expected) + len(late):
                    return
            data = storage.dequeue()
            if data is not None:
                with taken_lock:
                    taken.append(data)

    def produce() -> None:  # new rows while rows are deleted: rowids get reused
        for data in late:
            producer.enqueue(data)

    threads = [threading.Thread(target=consume, args=(c,)) for c in consumers for _ in range(4)]
    threads.append(threading.Thread(target=produce))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(taken) == sorted(expected + late)  # none twice, none lost
    assert _rows(path) == []


def test_a_claim_never_takes_a_newer_task_that_reused_the_id_of_the_one_it_saw(tmp_path):
    path = str(tmp_path / "q.sqlite3")
    storage, other = QueueFile("lane", filename=path), QueueFile("lane", filename=path)
    storage.enqueue(b"first")
    ids: list[int] = []

    def interlope() -> None:
        """Between this consumer's look and its claim, another process takes the task and a
        new one is queued under the same rowid (SQLite reuses the last rowid once freed)."""
        assert other.dequeue() == b"first"
        other.enqueue(b"second")
        with contextlib.closing(sqlite3.connect(path)) as reader:
            ids.extend(i for (i,) in reader.execute("select id from task"))

    _before(storage, _CLAIM_TASK, interlope)
    assert storage.dequeue() == b"second"  # not "first" a second time, and "second" not lost
    assert ids == [1]  # the race really reused the id
    assert _rows(path) == []


def _before(storage: QueueFile, statement: str, act: Callable[[], None], *, nth: int = 1) -> None:
    """Runs `act` once, just before `storage` sends `statement` for the `nth` time."""
    original = storage.db
    pending = [act]
    sent = [0]

    class Cursor:
        def __init__(self, cursor: sqlite3.Cursor) -> None:
            self.cursor = cursor

        def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
            if sql == statement:
                sent[0] += 1
                if sent[0] == nth and pending:
                    pending.pop()()
            return self.cursor.execute(sql, params)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.cursor, name)

    @contextlib.contextmanager
    def db(commit: bool = False, close: bool = False) -> Iterator[Any]:
        with original(commit, close) as cursor:
            yield Cursor(cursor)

    storage.db = db  # type: ignore[method-assign]


def test_looking_at_an_empty_queue_or_schedule_takes_no_write_lock(tmp_path):
    path = str(tmp_path / "q.sqlite3")
    storage = QueueFile("lane", filename=path, timeout=0.05)
    now = dt.datetime(2026, 12, 2, 12, 0)
    storage.add_to_schedule(b"later", now + dt.timedelta(seconds=30))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("begin exclusive")  # another process is writing
    try:
        assert storage.dequeue() is None
        assert storage.read_schedule(now) == []  # nothing due: no "database is locked"
    finally:
        holder.execute("rollback")
    later = now + dt.timedelta(seconds=31)
    assert storage.read_schedule(later) == [b"later"]
    assert storage.read_schedule(later) == []


def test_due_schedule_entries_are_each_claimed_by_one_consumer(tmp_path):
    path = str(tmp_path / "q.sqlite3")
    producer = QueueFile("lane", filename=path)
    now = dt.datetime(2026, 12, 2, 12, 0)
    expected = [f"due-{i}".encode() for i in range(200)]
    for i, data in enumerate(expected):
        producer.add_to_schedule(data, now - dt.timedelta(seconds=i))
    producer.add_to_schedule(b"not yet", now + dt.timedelta(minutes=1))
    consumers = [QueueFile("lane", filename=path) for _ in range(4)]
    claimed: list[list[bytes]] = [[] for _ in consumers]
    go = threading.Barrier(len(consumers))

    def read(i: int) -> None:
        go.wait()
        claimed[i].extend(consumers[i].read_schedule(now))

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(consumers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(data for each in claimed for data in each) == sorted(expected)
    assert producer.scheduled_items() == [b"not yet"]


def test_the_queue_file_sits_beside_the_state_file():
    assert queue_path("/var/lib/bot/state.sqlite3") == "/var/lib/bot/state.jobs.sqlite3"
    assert queue_path("ngrok-ops") == "ngrok-ops.jobs.sqlite3"


def test_a_claim_that_fails_midway_loses_no_due_entry(tmp_path):
    path = str(tmp_path / "q.sqlite3")
    storage = QueueFile("lane", filename=path, timeout=0.05)
    now = dt.datetime(2026, 12, 2, 12, 0)
    storage.add_to_schedule(b"first", now - dt.timedelta(seconds=2))
    storage.add_to_schedule(b"second", now - dt.timedelta(seconds=1))
    holder = sqlite3.connect(path, isolation_level=None)
    _before(storage, _CLAIM_SCHEDULED, lambda: holder.execute("begin exclusive"), nth=2)
    assert storage.read_schedule(now) == [b"first"]  # claimed, so it must be handed out now
    holder.execute("rollback")
    assert storage.read_schedule(now) == [b"second"]  # left for the next look, not lost
