"""The shared ngrok budget: the window rule with an injected clock, the reserve for urgent
work, and real processes on one SQLite file or one Redis that never draw a 429."""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from bot.ngrok.client import NgrokClient
from bot.ngrok.pacing import IN_FLIGHT_POLL, InFlightGate, window_wait
from bot.state.backends import open_budget_log
from bot.state.budget import SharedBudget
from bot.state.budget_sqlite import SqliteBudgetLog
from bot.state.store import StoreUnavailable
from tests.test_ngrok_client_live import settled_log
from tests.test_pacing import FakeClock, max_overlapping

REPO_ROOT = Path(__file__).resolve().parents[1]
API_KEY = "ngrok-test-api-key-0123456789"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def sqlite_budget(tmp_path: Path, clock: FakeClock, **kwargs: object) -> SharedBudget:
    budget_log = SqliteBudgetLog(str(tmp_path / "state.db"), clock=clock)
    return SharedBudget(budget_log, API_KEY, sleep=clock.sleep, **kwargs)  # type: ignore[arg-type]


# --- (a) the rule, with an injected clock ------------------------------------------------


def test_window_wait_admits_below_the_limit_and_names_the_wait_above_it():
    assert window_wait([], 100.0, 10.0, 2) == 0
    assert window_wait([(95.0, True)], 100.0, 10.0, 2) == 0
    # Full: the oldest finished at 95, so a place frees at 105.
    assert window_wait([(95.0, True), (99.0, True)], 100.0, 10.0, 2) == pytest.approx(5.0)
    # Full with the blocking entry still in flight: ask again soon, it may finish any moment.
    assert window_wait([(99.0, True), (160.0, False)], 100.0, 10.0, 1) == IN_FLIGHT_POLL
    # A lower limit (a listing facing the reserve) waits for a later entry.
    entries = [(91.0, True), (95.0, True), (99.0, True)]
    assert window_wait(entries, 100.0, 10.0, 2) == pytest.approx(5.0)


def test_a_request_counts_until_a_window_after_it_finished(tmp_path, clock):
    budget = sqlite_budget(tmp_path, clock, max_requests=3, per_seconds=10.0)
    starts = []
    for _ in range(4):
        with budget.slot():
            starts.append(clock.now)
            clock.now += 0.5
    assert starts[:3] == [1000.0, 1000.5, 1001.0]
    assert starts[3] == pytest.approx(1010.5)  # 10 s after the FIRST finished, not started


def test_never_more_than_n_in_any_window_over_many_windows(tmp_path, clock):
    rng = random.Random(99)
    budget = sqlite_budget(tmp_path, clock, max_requests=5, per_seconds=2.0)
    intervals = []
    for _ in range(60):
        clock.now += rng.choice([0.0, 0.0, 0.01, 0.3, 1.1])
        with budget.slot(urgent=rng.random() < 0.2):
            start = clock.now
            clock.now += rng.uniform(0.0, 0.4)
            intervals.append((start, clock.now))
    assert max_overlapping(intervals, 2.0) == 5
    assert clock.sleeps, "the budget never had to wait, so the test proved nothing"


def test_two_logs_on_one_file_share_one_window(tmp_path, clock):
    """Two processes are two connections to the file; the second sees the first's claims."""
    first = sqlite_budget(tmp_path, clock, max_requests=4, per_seconds=10.0)
    second = sqlite_budget(tmp_path, clock, max_requests=4, per_seconds=10.0)
    for budget in (first, second, first, second):
        with budget.slot():
            pass
    assert clock.sleeps == []
    with second.slot():
        assert clock.now == pytest.approx(1010.0)
    assert first.used() == 1


def test_a_claim_never_finished_holds_its_place_for_lease_and_window_only(tmp_path, clock):
    """A process killed mid-request: its place comes back, lease + window later."""
    budget_log = SqliteBudgetLog(str(tmp_path / "state.db"), clock=clock)
    token, wait = budget_log.claim("acct", limit=1, per_seconds=10.0, lease_seconds=30.0)
    assert token is not None and wait == 0
    assert budget_log.claim("acct", limit=1, per_seconds=10.0, lease_seconds=30.0)[0] is None
    clock.now += 39.9
    assert budget_log.claim("acct", limit=1, per_seconds=10.0, lease_seconds=30.0)[0] is None
    clock.now += 0.2
    assert budget_log.claim("acct", limit=1, per_seconds=10.0, lease_seconds=30.0)[0]


def test_the_state_file_and_repr_never_hold_the_api_key(tmp_path, clock):
    budget = sqlite_budget(tmp_path, clock)
    with budget.slot():
        pass
    rows = sqlite3.connect(tmp_path / "state.db").execute("SELECT * FROM ngrok_budget").fetchall()
    assert len(rows) == 1
    assert API_KEY not in repr(rows) and API_KEY not in repr(budget)


class BrokenLog:
    """A shared log that cannot be reached (Redis down, file unwritable)."""

    def claim(self, account, *, limit, per_seconds, lease_seconds):
        raise StoreUnavailable("The ngrok budget in Redis at 127.0.0.1:1/0 cannot be used.")

    def finish(self, account, token):
        raise AssertionError("nothing was claimed")

    def used(self, account, *, per_seconds):
        return 0

    def close(self):
        pass


def test_an_unreachable_shared_log_falls_back_to_this_process_and_says_so(caplog):
    budget = SharedBudget(BrokenLog(), API_KEY, max_requests=2, per_seconds=60.0)
    with caplog.at_level(logging.WARNING, logger="ngrok_ops.budget"), budget.slot():
        pass
    assert "pacing this process alone" in caplog.text
    assert len(budget._fallback._finished) == 1  # the request was counted in this process


# --- (d) the reserve -----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "redis"])
def budget_log_config(request, tmp_path):
    if request.param == "redis":
        return {"redis_url": request.getfixturevalue("redis_url"), "sqlite_path": "unused.db"}
    return {"redis_url": None, "sqlite_path": str(tmp_path / "state" / "ngrok-ops.db")}


def test_urgent_claims_proceed_when_listings_used_the_rest(budget_log_config):
    """20 per 60 s keeps 2 places: listings stop at 18, urgent work still gets 2 at once."""
    budget_log = open_budget_log(**budget_log_config)
    try:
        claim = {"per_seconds": 60.0, "lease_seconds": 60.0}
        for _ in range(18):
            token, _ = budget_log.claim("acct", limit=18, **claim)
            assert token is not None
            budget_log.finish("acct", token)
        token, wait = budget_log.claim("acct", limit=18, **claim)
        assert token is None and wait > 50  # a listing waits for the window
        urgent = [budget_log.claim("acct", limit=20, **claim)[0] for _ in range(3)]
        assert urgent[0] and urgent[1] and urgent[2] is None  # the reserve, then nothing
        assert budget_log.used("acct", per_seconds=60.0) == 20
        assert budget_log.claim("other", limit=18, **claim)[0]  # accounts do not share
    finally:
        budget_log.close()


def test_urgent_slot_does_not_sleep_behind_listings(tmp_path, clock):
    budget = sqlite_budget(tmp_path, clock, max_requests=20, per_seconds=60.0)
    for _ in range(18):
        with budget.slot():
            pass
    for _ in range(2):
        with budget.slot(urgent=True):
            pass
    assert clock.sleeps == []
    with budget.slot():
        pass
    assert sum(clock.sleeps) >= 59


def test_gate_keeps_one_in_flight_place_for_urgent_requests():
    gate = InFlightGate(2)
    release = threading.Event()
    entered = []

    def hold(urgent: bool) -> None:
        with gate.hold(urgent=urgent):
            entered.append(urgent)
            release.wait(10)

    listings = [threading.Thread(target=hold, args=(False,)) for _ in range(2)]
    for thread in listings:
        thread.start()
    urgent = threading.Thread(target=hold, args=(True,))
    # The urgent request enters although a listing holds a place and another one waits.
    for _ in range(200):
        if entered:
            break
        threading.Event().wait(0.01)
    urgent.start()
    for _ in range(500):
        if True in entered:
            break
        threading.Event().wait(0.01)
    assert sorted(entered) == [False, True]
    release.set()
    for thread in [*listings, urgent]:
        thread.join(10)
    assert sorted(entered) == [False, False, True]


class RecordingBudget:
    def __init__(self) -> None:
        self.marks: list[bool] = []

    def slot(self, *, urgent: bool = False):
        self.marks.append(urgent)
        return threading.Lock()  # any context manager


def test_client_marks_an_approved_actions_calls_urgent():
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(204)
        if request.url.path == "/tunnel_sessions":
            return httpx.Response(200, json={"tunnel_sessions": [], "next_page_uri": None})
        return httpx.Response(200, json={"id": "ts_1"})

    budget = RecordingBudget()
    client = NgrokClient(API_KEY, pacer=budget, transport=httpx.MockTransport(answer))
    with client:
        client.get_session("ts_1")
        client.act("restart", "ts_1")
        with client.urgent():
            client.get_session("ts_1")
            list(client.iter_sessions())
        client.get_session("ts_1", urgent=True)
        list(client.iter_sessions(urgent=True))
        client.list_sessions_page()
    assert budget.marks == [False, True, True, True, True, True, False]


# --- (b, c) real processes against the stand-in's limiter ---------------------------------


def run_children(configs: list[dict], tmp_path: Path, timeout: float = 120) -> list[dict]:
    """Starts one tests/budget_child.py per config, releases them together, returns reports."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    children = []
    for n, config in enumerate(configs):
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.budget_child", json.dumps(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=(tmp_path / f"child-{n}.err").open("wb"),
                text=True,
                cwd=REPO_ROOT,
                env=env,
            )
        )
    try:
        for n, child in enumerate(children):
            assert child.stdout.readline().strip() == "ready", (
                tmp_path / f"child-{n}.err"
            ).read_text()
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        reports = []
        for n, child in enumerate(children):
            out, _ = child.communicate(timeout=timeout)
            assert child.returncode == 0, (tmp_path / f"child-{n}.err").read_text()
            reports.append(json.loads(out))
        return reports
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()  # loudly: a child that hangs fails the assertions above
                child.wait()


@pytest.mark.timeout(180)
def test_two_processes_sharing_the_budget_never_draw_a_429(
    budget_log_config, ngrok_api_factory, tmp_path
):
    """20 per 2 s on the server and in the budget; two processes, each with two threads
    listing 14 times (56 calls, about three windows). Counts only, no timings."""
    server = ngrok_api_factory(sessions=5, rate_limit=20, rate_window=2.0)
    config = {
        **budget_log_config,
        "base_url": server.base_url,
        "api_key": API_KEY,
        "max_requests": 20,
        "per_seconds": 2.0,
        "threads": 2,
        "requests": 14,
    }
    reports = run_children([config, config], tmp_path)
    assert [r["errors"] for r in reports] == [[], []]
    assert [r["rate_limited"] for r in reports] == [0, 0]
    assert sum(r["ok"] for r in reports) == 56
    statuses = [r.status for r in settled_log(server, 56)]
    assert statuses.count(200) == 56 and 429 not in statuses
