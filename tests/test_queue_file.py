"""bot.queue_file: group-committed enqueues keep every row, once, and fail loudly together."""

from __future__ import annotations

import contextlib
import sqlite3
import threading

import pytest

from bot.queue_file import QueueFile, queue_path


def _rows(path: str) -> list[tuple[str, bytes]]:
    """What another connection sees: only committed rows."""
    with contextlib.closing(sqlite3.connect(path)) as reader:
        rows = reader.execute("select queue, data from task order by id").fetchall()
    return [(queue, bytes(data)) for queue, data in rows]


def test_concurrent_enqueues_are_each_committed_once_in_fewer_transactions(tmp_path, monkeypatch):
    path = str(tmp_path / "q.sqlite3")
    storage = QueueFile("lane", filename=path)
    transactions: list[int] = []
    write = storage._write

    def counted(group):
        transactions.append(len(group))
        write(group)

    monkeypatch.setattr(storage, "_write", counted)
    go = threading.Barrier(50)
    committed: list[bool] = []

    def one(i: int) -> None:
        go.wait()
        storage.enqueue(f"job-{i}".encode())
        # Returned, so the row must be visible to anyone reading the file now.
        committed.append((("lane", f"job-{i}".encode())) in _rows(path))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    rows = _rows(path)
    assert sorted(data for _, data in rows) == sorted(f"job-{i}".encode() for i in range(50))
    assert committed == [True] * 50
    assert sum(transactions) == 50
    assert len(transactions) < 50  # some rows shared a transaction
    assert storage.dequeue() is not None  # huey still reads what was written


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


def test_the_queue_file_sits_beside_the_state_file():
    assert queue_path("/var/lib/bot/state.sqlite3") == "/var/lib/bot/state.jobs.sqlite3"
    assert queue_path("ngrok-ops") == "ngrok-ops.jobs.sqlite3"
