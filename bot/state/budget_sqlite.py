"""The shared ngrok budget in the SQLite state file: every process on one machine.

A claim is one `BEGIN IMMEDIATE` transaction (it takes the file's write lock before it reads),
so two processes can never both see the last free place. Times are the wall clock, which all
processes of one machine share.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable

from bot.ngrok.pacing import window_wait
from bot.state.sqlite_file import open_sqlite
from bot.state.store import StoreError, StoreUnavailable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ngrok_budget (
    account TEXT NOT NULL,
    token TEXT NOT NULL,
    until REAL NOT NULL,
    done INTEGER NOT NULL,
    PRIMARY KEY (account, token)
);
CREATE INDEX IF NOT EXISTS ngrok_budget_until ON ngrok_budget (account, until);
"""


class SqliteBudgetLog:
    """The log of counted requests as rows of the state file; safe across threads and
    processes (one connection per process, reopened after a fork)."""

    def __init__(self, path: str, *, clock: Callable[[], float] = time.time) -> None:
        self._path = str(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        with self._lock:
            self._connection()

    def __repr__(self) -> str:
        return f"SqliteBudgetLog({self._path!r})"

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        try:
            conn = open_sqlite(self._path, _SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            message = f"The ngrok budget in {self._path} cannot be used: {exc}."
            raise StoreUnavailable(message) from exc
        self._conn, self._pid = conn, os.getpid()
        return conn

    def claim(
        self, account: str, *, limit: int, per_seconds: float, lease_seconds: float
    ) -> tuple[str | None, float]:
        """Takes a place under the file's write lock, or says how long to wait."""
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    now = self._clock()
                    conn.execute(
                        "DELETE FROM ngrok_budget WHERE account = ? AND until <= ?",
                        (account, now - per_seconds),
                    )
                    rows = conn.execute(
                        "SELECT until, done FROM ngrok_budget WHERE account = ? "
                        "ORDER BY until, done DESC",
                        (account,),
                    ).fetchall()
                    wait = window_wait(
                        [(until, bool(done)) for until, done in rows], now, per_seconds, limit
                    )
                    token = None
                    if wait == 0:
                        token = uuid.uuid4().hex
                        conn.execute(
                            "INSERT INTO ngrok_budget (account, token, until, done) "
                            "VALUES (?, ?, ?, 0)",
                            (account, token, now + lease_seconds),
                        )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"The ngrok budget in {self._path} failed: {exc}.") from exc
            return token, wait

    def finish(self, account: str, token: str) -> None:
        with self._lock:
            try:
                self._connection().execute(
                    "UPDATE ngrok_budget SET until = ?, done = 1 WHERE account = ? AND token = ?",
                    (self._clock(), account, token),
                )
            except sqlite3.Error as exc:
                raise StoreError(f"The ngrok budget in {self._path} failed: {exc}.") from exc

    def used(self, account: str, *, per_seconds: float) -> int:
        with self._lock:
            try:
                row = (
                    self._connection()
                    .execute(
                        "SELECT COUNT(*) FROM ngrok_budget WHERE account = ? AND until > ?",
                        (account, self._clock() - per_seconds),
                    )
                    .fetchone()
                )
            except sqlite3.Error as exc:
                raise StoreError(f"The ngrok budget in {self._path} failed: {exc}.") from exc
            return int(row[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
