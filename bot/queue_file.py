"""The job queue's SQLite file: huey's SqliteStorage, tuned for many acks at once.

Three changes to huey's storage, each measured (the first and last on the served ack path,
bench/ack_latency.py; the second in one process):

- `synchronous=NORMAL` in WAL mode instead of SQLite's FULL: a commit no longer waits for
  an fsync (50 concurrent enqueues in one process: p99 73 to 382 ms with FULL, 15 ms with
  NORMAL). WAL with NORMAL keeps every commit across a crash or SIGKILL of any process; only
  an OS crash or a power loss can lose the last commits, and the file stays consistent.
- Group commit: huey serializes a process's SQLite calls behind one lock, and each enqueue
  is its own transaction, each call giving up the GIL and waiting to get it back behind
  every thread that is parsing a request. Here the first thread to arrive writes every row
  that is waiting in one statement, and the others wait for it. Each caller still returns
  only once its own row is committed, so Slack's 200 still means the job is in the queue
  (50 threads parsing and enqueueing in one process: burst done in 32.1 ms at the median
  against 34.6 ms with huey's own enqueue).
- The write lock is held for one statement, never across a GIL wait. huey's dequeue and
  schedule read run begin-exclusive, select, delete, commit: four calls, each giving up and
  winning back the GIL, so a consumer thread that lost the GIL to its own rendering threads
  held the file's only write lock meanwhile, and a web process's enqueue slept in SQLite's
  busy handler (1, 2, 5, 10 ms steps). Here every write is one autocommit statement: an
  enqueue is one multi-row insert, and a task or a due schedule entry is claimed by
  compare-and-delete after a plain read. huey read the schedule under the write lock every
  second per lane even when nothing was due; that read takes no lock now. Measured in the
  web process during the benchmark's bursts (two runs each, same machine, one after the
  other): enqueue wall time mean 1.61 and 1.81 ms with huey's statements, 1.11 and 0.90 ms
  with these; p99 11.7 and 10.5 ms against 8.2 and 5.8 ms; worst 50.6 and 63.3 ms against
  17.8 and 9.2 ms.

This is written here because no library batches huey's writes or shortens its locks; it
overrides huey's `enqueue`, `dequeue` and `read_schedule` and nothing else.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huey.storage import SqliteStorage

log = logging.getLogger("ngrok_ops.jobs")

_INSERT = "insert into task (queue, data, priority) values "
# One group is one statement (so one transaction): 900 parameters at most, under every
# SQLite build's limit (999 before 3.32); a bigger burst is written in several groups.
_ROWS_PER_INSERT = 300
_FIRST_TASK = "select id, data from task where queue = ? order by priority desc, id limit 1"
_CLAIM_TASK = "delete from task where id = ? and data = ?"
_DUE = "select id, data from schedule where queue = ? and timestamp <= ? order by timestamp, id"
_CLAIM_SCHEDULED = "delete from schedule where id = ? and data = ?"


@dataclass
class _Row:
    values: tuple[str, Any, float]
    written: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class QueueFile(SqliteStorage):
    """huey's SQLite storage with `synchronous=NORMAL`, group-committed enqueues, and every
    write one statement (claims by compare-and-delete)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiting: list[_Row] = []
        self._waiting_lock = threading.Lock()  # guards `_waiting` only, never held for I/O
        self._leader = threading.Lock()  # one group's transaction at a time

    def _create_connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection = super()._create_connection()
        connection.execute("pragma synchronous=normal")
        return connection

    def enqueue(self, data: bytes, priority: float | None = None) -> None:
        """Returns once the row is committed, in one statement with whatever other threads
        of this process enqueued meanwhile; raises what that statement raised."""
        row = _Row((self.name, self.to_blob(data), priority or 0))
        with self._waiting_lock:
            self._waiting.append(row)
        with self._leader:
            while not row.written.is_set():  # nobody took it yet: this thread writes groups
                with self._waiting_lock:
                    group = self._waiting[:_ROWS_PER_INSERT]
                    del self._waiting[:_ROWS_PER_INSERT]
                self._write(group)
        if row.error is not None:
            raise row.error

    def _write(self, group: list[_Row]) -> None:
        """One statement, so one transaction, for the group; every row learns the outcome,
        even when this thread is interrupted (a row left unmarked would be reported as
        queued)."""
        values = ", ".join(["(?, ?, ?)"] * len(group))
        try:
            with self.db() as cursor:  # autocommit: the statement is its own transaction
                cursor.execute(_INSERT + values, [v for row in group for v in row.values])
        except Exception as error:
            for row in group:
                row.error = error
        except BaseException:
            for row in group:
                row.error = RuntimeError("the enqueue was interrupted")
            raise
        finally:
            for row in group:
                row.written.set()

    def dequeue(self) -> bytes | None:
        """Claims the first task by compare-and-delete: the write lock is held for one
        statement, not across huey's begin-select-delete-commit. `data` is part of the
        match because SQLite reuses the rowid of a deleted last row, so the id alone could
        name a newer task; a task's data carries its unique huey id. huey's process lock
        keeps this process's workers from racing each other for one row."""
        with self.db() as cursor:
            while True:
                cursor.execute(_FIRST_TASK, (self.name,))
                first = cursor.fetchall()  # to the end: no read transaction is left open
                if not first:
                    return None
                cursor.execute(_CLAIM_TASK, first[0])
                if cursor.rowcount == 1:
                    return bytes(first[0][1])
                # another consumer process took it between the two statements: look again

    def read_schedule(self, ts: dt.datetime) -> list[bytes]:
        """Due tasks, each claimed by compare-and-delete like `dequeue`; a look at an empty
        schedule (every second, per lane and consumer) takes no write lock at all. Each claim
        commits on its own, so when one fails, the tasks already claimed are returned (they
        are no longer in the schedule) and the rest wait for the next look."""
        due: list[bytes] = []
        with self.db() as cursor:
            cursor.execute(_DUE, (self.name, ts.timestamp()))
            for task_id, data in cursor.fetchall():
                try:
                    cursor.execute(_CLAIM_SCHEDULED, (task_id, data))
                except sqlite3.Error:
                    if not due:
                        raise
                    log.warning("claimed %d due task(s); the rest wait for the next look", len(due))
                    break
                if cursor.rowcount == 1:
                    due.append(bytes(data))
        return due


def queue_path(state_path: str) -> str:
    """The queue's SQLite file sits beside the state file (`x.sqlite3` -> `x.jobs.sqlite3`)."""
    path = Path(state_path)
    return str(path.with_name(f"{path.stem}.jobs{path.suffix or '.sqlite3'}"))
