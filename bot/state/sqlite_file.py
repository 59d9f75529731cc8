"""Opening a SQLite file that several processes open at the same moment.

Switching a new file to WAL needs an exclusive lock, and SQLite answers "database is locked"
at once, without waiting out the busy timeout, when another process holds its write lock
while creating the same schema (two gunicorn workers, or a web process and its consumer,
starting together). So the switch and the schema are retried for a few seconds here; one
place for the store and the ngrok budget, which share the file.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

BUSY_TIMEOUT_MS = 10_000
OPEN_RETRY_SECONDS = 10.0


def open_sqlite(
    path: str, schema: str, *, retry_seconds: float = OPEN_RETRY_SECONDS
) -> sqlite3.Connection:
    """An autocommit connection (isolation_level=None: every transaction is explicit) in WAL
    mode with `schema` applied; sqlite3.Error or OSError when the file cannot be used."""
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    deadline = time.monotonic() + retry_seconds
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.executescript(schema)
                return conn
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    except BaseException:
        conn.close()
        raise
