"""SQLite backend: one file, WAL, safe for several threads and several processes on one machine.

Exactly-once nonce consumption rests on the primary key: one `INSERT ... ON CONFLICT` statement
either claims the nonce or changes nothing, and SQLite's file lock makes that atomic across
processes. Request transitions read and write inside `BEGIN IMMEDIATE`, which takes the write
lock first, so two processes cannot both see the old state.

Within a process one connection is shared under a lock: the bot serves a handful of requests a
minute, and one connection is simpler to close than one per thread. After a fork (gunicorn
`--preload`) the child opens its own connection, as SQLite requires.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from bot.state.sqlite_file import open_sqlite
from bot.state.store import (
    StoreError,
    StoreUnavailable,
    check_audit_entry,
    check_request_record,
    check_ttl,
    clamp_limit,
    new_epoch,
    next_request_record,
)

PURGE_EVERY_SECONDS = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS nonces (
    nonce TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS nonces_expires ON nonces (expires_at);
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_expires ON requests (expires_at);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    session_id TEXT,
    actor TEXT,
    requester TEXT,
    approver TEXT,
    entry TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_ts ON audit (ts, id);
CREATE INDEX IF NOT EXISTS audit_session ON audit (session_id, ts);
CREATE INDEX IF NOT EXISTS audit_actor ON audit (actor, ts);
CREATE INDEX IF NOT EXISTS audit_requester ON audit (requester, ts);
CREATE INDEX IF NOT EXISTS audit_approver ON audit (approver, ts);
"""


@contextlib.contextmanager
def _sqlite_errors(path: str) -> Iterator[None]:
    """Turn sqlite3 and directory errors into store errors that name the file, never content."""
    try:
        yield
    except (sqlite3.OperationalError, OSError) as exc:
        raise StoreUnavailable(f"The SQLite store {path} cannot be used: {exc}.") from exc
    except sqlite3.Error as exc:
        raise StoreError(f"The SQLite store {path} failed: {exc}.") from exc


class SqliteStore:
    """The default store: a file next to the bot, shared by its workers."""

    def __init__(self, path: str, *, clock: Callable[[], float] = time.time) -> None:
        self._path = str(path)
        self._clock = clock
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._last_purge = 0.0
        self._closed = False
        with self._lock:
            self._connection()

    def __repr__(self) -> str:
        return f"SqliteStore({self._path!r})"

    def _connection(self) -> sqlite3.Connection:
        """The process's connection, opened on first use and again after a fork."""
        if self._closed:
            raise StoreError("The store is closed.")
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        with _sqlite_errors(self._path):
            conn = open_sqlite(self._path, _SCHEMA)
        self._conn, self._pid = conn, os.getpid()
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction that holds the file's write lock from its first statement."""
        with self._lock, _sqlite_errors(self._path):
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _purge_expired(self, conn: sqlite3.Connection, now: float) -> None:
        """Forget expired nonces and requests now and then, so the file stays small."""
        if now - self._last_purge < PURGE_EVERY_SECONDS:
            return
        self._last_purge = now
        conn.execute("DELETE FROM nonces WHERE expires_at <= ?", (now,))
        conn.execute("DELETE FROM requests WHERE expires_at <= ?", (now,))

    def consume_nonce(self, nonce: str, *, ttl_seconds: float) -> bool:
        ttl = check_ttl(ttl_seconds)
        now = self._clock()
        with self._write() as conn:
            # Claims a new nonce, or re-claims one whose TTL has run out (as Redis would have
            # forgotten it); a live nonce is left untouched and rowcount stays 0.
            claimed = conn.execute(
                "INSERT INTO nonces (nonce, expires_at) VALUES (?, ?) "
                "ON CONFLICT (nonce) DO UPDATE SET expires_at = excluded.expires_at "
                "WHERE nonces.expires_at <= ?",
                (nonce, now + ttl, now),
            ).rowcount
            self._purge_expired(conn, now)
        return claimed == 1

    def epoch(self) -> str:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO meta (name, value) VALUES ('epoch', ?) ON CONFLICT (name) DO NOTHING",
                (new_epoch(),),
            )
            row = conn.execute("SELECT value FROM meta WHERE name = 'epoch'").fetchone()
        return str(row[0])

    def put_request(self, request_id: str, record: dict[str, Any], *, ttl_seconds: float) -> None:
        check_request_record(record)
        ttl = check_ttl(ttl_seconds)
        raw = json.dumps(record, separators=(",", ":"))
        now = self._clock()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO requests (request_id, record, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (request_id) DO UPDATE "
                "SET record = excluded.record, expires_at = excluded.expires_at",
                (request_id, raw, now + ttl),
            )
            self._purge_expired(conn, now)

    def create_request(
        self, request_id: str, record: dict[str, Any], *, ttl_seconds: float
    ) -> bool:
        check_request_record(record)
        ttl = check_ttl(ttl_seconds)
        raw = json.dumps(record, separators=(",", ":"))
        now = self._clock()
        with self._write() as conn:
            # Like a nonce: a live record blocks the insert; an expired one is replaced.
            created = conn.execute(
                "INSERT INTO requests (request_id, record, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (request_id) DO UPDATE "
                "SET record = excluded.record, expires_at = excluded.expires_at "
                "WHERE requests.expires_at <= ?",
                (request_id, raw, now + ttl, now),
            ).rowcount
        return created == 1

    def find_requests(self, prefix: str) -> list[dict[str, Any]]:
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._lock, _sqlite_errors(self._path):
            rows = (
                self._connection()
                .execute(
                    "SELECT record FROM requests WHERE request_id LIKE ? ESCAPE '\\' "
                    "AND expires_at > ? ORDER BY request_id",
                    (pattern, self._clock()),
                )
                .fetchall()
            )
        return [json.loads(row[0]) for row in rows]

    def get_request(self, request_id: str) -> dict[str, Any] | None:
        with self._lock, _sqlite_errors(self._path):
            row = (
                self._connection()
                .execute(
                    "SELECT record FROM requests WHERE request_id = ? AND expires_at > ?",
                    (request_id, self._clock()),
                )
                .fetchone()
            )
        return None if row is None else json.loads(row[0])

    def transition_request(
        self, request_id: str, *, expect_state: str, new_state: str, changes: dict[str, Any]
    ) -> dict[str, Any] | None:
        with self._write() as conn:
            row = conn.execute(
                "SELECT record FROM requests WHERE request_id = ? AND expires_at > ?",
                (request_id, self._clock()),
            ).fetchone()
            if row is None:
                return None
            record = json.loads(row[0])
            if record.get("state") != expect_state:
                return None
            updated = next_request_record(record, new_state, changes)
            conn.execute(
                "UPDATE requests SET record = ? WHERE request_id = ?",
                (json.dumps(updated, separators=(",", ":")), request_id),
            )
        return updated

    def add_audit(self, entry: dict[str, Any]) -> None:
        ts = check_audit_entry(entry)
        raw = json.dumps(entry, separators=(",", ":"))
        with self._write() as conn:
            conn.execute(
                "INSERT INTO audit (ts, session_id, actor, requester, approver, entry) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    ts,
                    _text_or_none(entry.get("session_id")),
                    _text_or_none(entry.get("actor")),
                    _text_or_none(entry.get("requester")),
                    _text_or_none(entry.get("approver")),
                    raw,
                ),
            )

    def recent_audit(
        self, *, limit: int = 10, session_id: str | None = None, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        limit = clamp_limit(limit)
        if limit == 0:
            return []
        where: list[str] = []
        params: list[Any] = []
        if session_id is not None:
            where.append("session_id = ?")
            params.append(session_id)
        if user_id is not None:
            where.append("(actor = ? OR requester = ? OR approver = ?)")
            params.extend([user_id] * 3)
        sql = "SELECT entry FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts DESC, id DESC LIMIT ?"
        params.append(limit)
        with self._lock, _sqlite_errors(self._path):
            rows = self._connection().execute(sql, params).fetchall()
        return [json.loads(row[0]) for row in rows]

    def ping(self) -> None:
        with self._lock, _sqlite_errors(self._path):
            self._connection().execute("SELECT 1 FROM nonces LIMIT 1").fetchall()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.close()


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
