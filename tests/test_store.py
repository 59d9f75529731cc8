"""The Store contract, run against both real backends: a SQLite file and a real redis-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import bot.state.store_redis
from bot.state.backends import open_store
from bot.state.store import Store, StoreError, StoreUnavailable
from bot.state.store_redis import RedisStore
from bot.state.store_sqlite import SqliteStore

REPO_ROOT = Path(__file__).resolve().parents[1]
WAIT_SECONDS = 15.0


@pytest.fixture(params=["sqlite", "redis"])
def store_config(request, tmp_path):
    """Arguments for open_store; the Redis case starts (once) and flushes a real server."""
    if request.param == "redis":
        return {"redis_url": request.getfixturevalue("redis_url"), "sqlite_path": "unused.db"}
    return {"redis_url": None, "sqlite_path": str(tmp_path / "state" / "ngrok-ops.db")}


@pytest.fixture
def store(store_config):
    opened = open_store(**store_config)
    yield opened
    opened.close()


def wait_until(condition, what: str):
    """Poll with a generous deadline: expiry is asserted as an event, not as a duration."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"timed out waiting until {what}")


def race(count: int, work):
    """Run work(i) on `count` threads released together; returns the results in order."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=WAIT_SECONDS)
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def audit_row(ts, *, action="stop", actor="U1", session_id="ts_a", outcome="ok", **extra):
    return {
        "ts": ts,
        "action": action,
        "actor": actor,
        "session_id": session_id,
        "outcome": outcome,
        **extra,
    }


# --- backend choice and health ------------------------------------------------------------


def test_open_store_uses_sqlite_without_url_and_redis_with_one(tmp_path, redis_url):
    for url in (None, ""):
        store = open_store(redis_url=url, sqlite_path=str(tmp_path / "a.db"))
        assert isinstance(store, SqliteStore)
        assert isinstance(store, Store)
        store.close()
    assert (tmp_path / "a.db").is_file()
    store = open_store(redis_url=redis_url, sqlite_path=str(tmp_path / "b.db"))
    assert isinstance(store, RedisStore)
    assert isinstance(store, Store)
    store.ping()
    store.close()
    assert not (tmp_path / "b.db").exists()


def test_ping_answers(store):
    store.ping()


def test_unreachable_redis_raises_without_the_password(redis_url):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = open_store(redis_url=f"redis://:hunter2-pass@127.0.0.1:{port}/0", sqlite_path="x")
    try:
        with pytest.raises(StoreUnavailable) as caught:
            store.ping()
        with pytest.raises(StoreUnavailable):
            store.consume_nonce("n", ttl_seconds=5)
    finally:
        store.close()
    assert f"127.0.0.1:{port}" in str(caught.value)
    for text in (str(caught.value), repr(caught.value), repr(store)):
        assert "hunter2-pass" not in text


def test_unusable_sqlite_path_raises_store_unavailable(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreUnavailable) as caught:
        open_store(redis_url=None, sqlite_path=str(blocker / "state.db"))
    assert "state.db" in str(caught.value)


def test_sqlite_store_refuses_use_after_close(tmp_path):
    store = open_store(redis_url=None, sqlite_path=str(tmp_path / "s.db"))
    store.close()
    with pytest.raises(StoreError):
        store.consume_nonce("n", ttl_seconds=5)


# --- nonces -----------------------------------------------------------------------------


def test_nonce_is_consumed_exactly_once(store):
    assert store.consume_nonce("nonce-1", ttl_seconds=600) is True
    assert store.consume_nonce("nonce-1", ttl_seconds=600) is False
    assert store.consume_nonce("nonce-1", ttl_seconds=600) is False
    assert store.consume_nonce("nonce-2", ttl_seconds=600) is True


def test_nonce_is_forgotten_after_its_ttl(store):
    assert store.consume_nonce("short", ttl_seconds=0.2) is True
    assert store.consume_nonce("long", ttl_seconds=600) is True
    wait_until(lambda: store.consume_nonce("short", ttl_seconds=600), "the short nonce expired")
    assert store.consume_nonce("short", ttl_seconds=600) is False
    assert store.consume_nonce("long", ttl_seconds=600) is False


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), "10"])
def test_nonce_ttl_must_be_positive_and_finite(store, ttl):
    with pytest.raises(ValueError):
        store.consume_nonce("n", ttl_seconds=ttl)


def test_sixteen_threads_consume_one_nonce_once(store):
    results = race(16, lambda _i: store.consume_nonce("contested", ttl_seconds=600))
    assert results.count(True) == 1
    assert results.count(False) == 15


def test_redis_prefixes_keep_bots_apart(redis_url):
    first = RedisStore(redis_url, prefix="bot-a:")
    second = RedisStore(redis_url, prefix="bot-b:")
    try:
        assert first.consume_nonce("same", ttl_seconds=60) is True
        assert second.consume_nonce("same", ttl_seconds=60) is True
        assert first.consume_nonce("same", ttl_seconds=60) is False
    finally:
        first.close()
        second.close()


_RACE_CHILD = """
import json, sys
from bot.state.backends import open_store

config = json.loads(sys.argv[1])
store = open_store(redis_url=config["redis_url"], sqlite_path=config["sqlite_path"])
store.ping()
print("ready", flush=True)
sys.stdin.readline()
nonces = [i for i in range(config["nonces"]) if store.consume_nonce(f"race-{i}", ttl_seconds=600)]
moved = [
    i
    for i in range(config["requests"])
    if store.transition_request(
        f"req-{i}", expect_state="pending", new_state="approved", changes={"by": config["me"]}
    )
    is not None
]
store.close()
print(json.dumps({"nonces": nonces, "requests": moved}), flush=True)
"""


def test_processes_race_for_nonces_and_requests(store, store_config, tmp_path):
    """Four real processes on the same file / Redis: every nonce and request is won once."""
    nonces, requests, workers = 50, 10, 4
    for i in range(requests):
        store.put_request(f"req-{i}", {"state": "pending"}, ttl_seconds=600)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    children = []
    for me in range(workers):
        config = {**store_config, "nonces": nonces, "requests": requests, "me": me}
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", _RACE_CHILD, json.dumps(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=(tmp_path / f"child-{me}.err").open("wb"),
                text=True,
                cwd=tmp_path,
                env=env,
            )
        )
    try:
        for me, child in enumerate(children):
            line = child.stdout.readline().strip()
            assert line == "ready", (tmp_path / f"child-{me}.err").read_text()
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        reports = []
        for me, child in enumerate(children):
            out, _ = child.communicate(timeout=90)
            assert child.returncode == 0, (tmp_path / f"child-{me}.err").read_text()
            reports.append(json.loads(out))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    won = [i for report in reports for i in report["nonces"]]
    assert sorted(won) == list(range(nonces))
    moved = [i for report in reports for i in report["requests"]]
    assert sorted(moved) == list(range(requests))
    for i in range(requests):
        record = store.get_request(f"req-{i}")
        assert record["state"] == "approved"
        assert i in reports[record["by"]]["requests"]


# --- two-person requests ----------------------------------------------------------------


def test_request_round_trip_and_replace(store):
    record = {"state": "pending", "targets": ["ts_1", "ts_2"], "requester": "U1", "at": 1.5}
    store.put_request("r1", record, ttl_seconds=600)
    assert store.get_request("r1") == record
    assert store.get_request("missing") is None
    store.put_request("r1", {"state": "pending", "targets": []}, ttl_seconds=600)
    assert store.get_request("r1") == {"state": "pending", "targets": []}


def test_request_needs_a_string_state(store):
    with pytest.raises(ValueError):
        store.put_request("r1", {"targets": []}, ttl_seconds=600)
    with pytest.raises(ValueError):
        store.put_request("r1", {"state": 3}, ttl_seconds=600)
    assert store.get_request("r1") is None


def test_transition_is_compare_and_set(store):
    store.put_request("r1", {"state": "pending", "requester": "U1"}, ttl_seconds=600)
    updated = store.transition_request(
        "r1", expect_state="pending", new_state="approved", changes={"approver": "U2"}
    )
    assert updated == {"state": "approved", "requester": "U1", "approver": "U2"}
    assert store.get_request("r1") == updated
    lost = store.transition_request(
        "r1", expect_state="pending", new_state="denied", changes={"approver": "U3"}
    )
    assert lost is None
    assert store.get_request("r1") == updated
    unknown = store.transition_request("nope", expect_state="pending", new_state="x", changes={})
    assert unknown is None


def test_transition_state_wins_over_changes(store):
    store.put_request("r1", {"state": "pending"}, ttl_seconds=600)
    updated = store.transition_request(
        "r1", expect_state="pending", new_state="done", changes={"state": "sneaky", "n": 1}
    )
    assert updated == {"state": "done", "n": 1}


def test_racing_transitions_have_one_winner(store):
    store.put_request("r1", {"state": "pending"}, ttl_seconds=600)
    results = race(
        12,
        lambda i: store.transition_request(
            "r1", expect_state="pending", new_state="approved", changes={"approver": f"U{i}"}
        ),
    )
    winners = [result for result in results if result is not None]
    assert len(winners) == 1
    assert store.get_request("r1") == winners[0]


def test_request_expires_and_transition_keeps_the_expiry(store):
    store.put_request("r1", {"state": "pending"}, ttl_seconds=1.0)
    store.put_request("keep", {"state": "pending"}, ttl_seconds=600)
    moved = store.transition_request("r1", expect_state="pending", new_state="approved", changes={})
    assert moved is not None
    wait_until(lambda: store.get_request("r1") is None, "the request expired")
    assert (
        store.transition_request("r1", expect_state="approved", new_state="x", changes={}) is None
    )
    assert store.get_request("keep") == {"state": "pending"}


# --- audit ------------------------------------------------------------------------------


def test_audit_is_newest_first_by_ts_with_limit(store):
    for ts in (100.0, 300.5, 200.25, 50):
        store.add_audit(audit_row(ts, note=f"at {ts}"))
    rows = store.recent_audit(limit=10)
    assert [row["ts"] for row in rows] == [300.5, 200.25, 100.0, 50]
    assert rows[0] == audit_row(300.5, note="at 300.5")
    assert [row["ts"] for row in store.recent_audit(limit=2)] == [300.5, 200.25]
    assert store.recent_audit(limit=0) == []


def test_audit_ties_and_identical_rows_keep_insertion_order(store):
    store.add_audit(audit_row(10.0, action="first"))
    store.add_audit(audit_row(10.0, action="second"))
    store.add_audit(audit_row(10.0, action="second"))
    assert [row["action"] for row in store.recent_audit()] == ["second", "second", "first"]


def test_audit_filters_by_session_and_user(store):
    store.add_audit(audit_row(1, actor="U1", session_id="ts_a"))
    store.add_audit(audit_row(2, actor="U2", session_id="ts_b", requester="U1"))
    store.add_audit(audit_row(3, actor="U2", session_id="ts_a", approver="U3"))
    store.add_audit(audit_row(4, actor="U4", session_id="ts_c", requester="U2", approver="U1"))
    store.add_audit(audit_row(5, actor="U5", session_id=""))

    def stamps(**filters):
        return [row["ts"] for row in store.recent_audit(**filters)]

    assert stamps() == [5, 4, 3, 2, 1]
    assert stamps(session_id="ts_a") == [3, 1]
    assert stamps(session_id="ts_zzz") == []
    assert stamps(user_id="U1") == [4, 2, 1]
    assert stamps(user_id="U2") == [4, 3, 2]
    assert stamps(user_id="U3") == [3]
    assert stamps(session_id="ts_a", user_id="U2") == [3]
    assert stamps(session_id="ts_a", user_id="U1", limit=1) == [1]
    assert stamps(user_id="U1", limit=2) == [4, 2]


def test_audit_needs_a_numeric_ts_but_keeps_sparse_rows(store):
    with pytest.raises(ValueError):
        store.add_audit({"action": "stop", "actor": "U1"})
    for bad_ts in ("yesterday", None, float("nan"), True):
        with pytest.raises(ValueError):
            store.add_audit(audit_row(bad_ts))
    assert store.recent_audit() == []
    sparse = {"ts": 7, "event": "refused", "actor": "U9", "outcome": "refused"}
    store.add_audit(sparse)
    assert store.recent_audit() == [sparse]
    assert store.recent_audit(user_id="U9") == [sparse]
    assert store.recent_audit(session_id="ts_a") == []


def test_redis_audit_keeps_only_the_newest_rows(redis_url, monkeypatch):
    monkeypatch.setattr(bot.state.store_redis, "AUDIT_CAP", 5)
    monkeypatch.setattr(bot.state.store_redis, "AUDIT_INDEX_CAP", 3)
    store = RedisStore(redis_url)
    try:
        for ts in range(8):
            store.add_audit(audit_row(float(ts)))
        assert [row["ts"] for row in store.recent_audit(limit=100)] == [7, 6, 5, 4, 3]
        assert [row["ts"] for row in store.recent_audit(session_id="ts_a")] == [7, 6, 5]
        assert [row["ts"] for row in store.recent_audit(user_id="U1")] == [7, 6, 5]
    finally:
        store.close()


def wipe(store_config) -> None:
    """What a data loss leaves: an emptied Redis (restarted without persistence), or a new
    SQLite file in place of the old one."""
    if store_config["redis_url"]:
        import redis

        client = redis.Redis.from_url(store_config["redis_url"])
        try:
            client.flushall()
        finally:
            client.close()
    else:
        Path(store_config["sqlite_path"]).unlink()
        for suffix in ("-wal", "-shm"):
            Path(store_config["sqlite_path"] + suffix).unlink(missing_ok=True)


def test_epoch_is_shared_and_stable_while_the_data_lasts(store, store_config):
    first = store.epoch()
    assert first and first == store.epoch()
    other = open_store(**store_config)
    try:
        assert other.epoch() == first
    finally:
        other.close()


def test_a_store_that_lost_its_data_has_a_new_epoch(store, store_config):
    before = store.epoch()
    assert store.consume_nonce("n-before-loss", ttl_seconds=60)
    store.close()
    wipe(store_config)
    reopened = open_store(**store_config)
    try:
        assert reopened.epoch() != before
        assert reopened.consume_nonce("n-before-loss", ttl_seconds=60)  # forgotten, as feared
    finally:
        reopened.close()


_OPEN_CHILD = """
import sys, time
from bot.state.backends import open_store
from bot.state.budget_sqlite import SqliteBudgetLog

path, start = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
store = open_store(redis_url=None, sqlite_path=path)
assert store.consume_nonce(sys.argv[3], ttl_seconds=60)
SqliteBudgetLog(path).close()
store.close()
"""


def test_many_processes_opening_a_new_sqlite_file_at_once_all_succeed(tmp_path):
    """Two gunicorn workers and a consumer start together on a file that does not exist yet:
    the switch to WAL and the schema must wait for each other, not fail with "locked"."""
    for attempt in range(3):
        path = str(tmp_path / f"fresh-{attempt}.sqlite3")
        start = time.time() + 1.0
        children = [
            subprocess.Popen(
                [sys.executable, "-c", _OPEN_CHILD, path, str(start), f"n{i}"],
                cwd=REPO_ROOT,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(8)
        ]
        failures = [c.communicate(timeout=60)[1] for c in children if c.wait(timeout=60) != 0]
        assert failures == [], failures[0][-500:]
