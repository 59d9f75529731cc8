"""Pacing: never more than N requests in ANY rolling window, a cap on requests in flight."""

import random
import threading
import time

import pytest

from bot.ngrok import pacing
from bot.ngrok.pacing import Backoff, Pacer, shared_pacer


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def max_overlapping(intervals, window):
    """The most requests whose [start, end] could fall into one window of `window` seconds.

    The server counts a request at some moment between its start and end. Sliding a window
    right only loses a request when passing its end, so the worst window starts at an end.
    """
    return max(
        sum(1 for start, end in intervals if end >= lo and start < lo + window)
        for _, lo in intervals
    )


def test_burst_then_waits_for_the_oldest_to_leave_the_window():
    clock = FakeClock()
    pacer = Pacer(max_requests=3, per_seconds=10.0, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(4):
        with pacer.slot():
            starts.append(clock.now)
            clock.now += 0.5
    assert starts[:3] == [1000.0, 1000.5, 1001.0]
    # The fourth may start only 10 s after the FIRST finished (1000.5), not at a refill rate.
    assert starts[3] == pytest.approx(1010.5)


def test_token_bucket_trap_is_avoided_over_many_windows():
    """A bucket with burst N plus refill lets ~2N into one window; this never lets N+1 in."""
    clock = FakeClock()
    rng = random.Random(99)
    pacer = Pacer(max_requests=5, per_seconds=2.0, clock=clock, sleep=clock.sleep)
    intervals = []
    for _ in range(60):
        clock.now += rng.choice([0.0, 0.0, 0.01, 0.3, 1.1])
        with pacer.slot():
            start = clock.now
            clock.now += rng.uniform(0.0, 0.4)
            intervals.append((start, clock.now))
    assert max_overlapping(intervals, 2.0) == 5
    assert clock.sleeps, "the pacer never had to wait, so the test proved nothing"


def test_a_request_counts_until_a_full_window_after_it_finished():
    clock = FakeClock()
    pacer = Pacer(max_requests=1, per_seconds=5.0, clock=clock, sleep=clock.sleep)
    with pacer.slot():
        clock.now += 1.0  # finishes at 1001.0
    clock.now += 4.9
    with pacer.slot():  # 0.1 s before the first leaves the window
        pass
    assert clock.sleeps == [pytest.approx(0.1)]
    clock.now += 5.0
    with pacer.slot():  # a full window after the second finished: no wait
        pass
    assert len(clock.sleeps) == 1


def test_threads_respect_window_and_in_flight_cap():
    pacer = Pacer(max_requests=6, per_seconds=0.3, max_in_flight=2)
    lock = threading.Lock()
    state = {"in_flight": 0, "max_in_flight": 0}
    intervals = []

    def worker():
        for _ in range(6):
            with pacer.slot():
                start = time.monotonic()
                with lock:
                    state["in_flight"] += 1
                    state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
                time.sleep(0.005)
                with lock:
                    state["in_flight"] -= 1
                end = time.monotonic()
            with lock:
                intervals.append((start, end))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(intervals) == 24
    assert state["max_in_flight"] <= 2
    assert max_overlapping(intervals, 0.3) <= 6


def test_a_request_that_raises_still_frees_its_slot():
    clock = FakeClock()
    pacer = Pacer(max_requests=5, per_seconds=1.0, max_in_flight=1, clock=clock, sleep=clock.sleep)
    with pytest.raises(RuntimeError), pacer.slot():
        raise RuntimeError("boom")

    def another() -> None:
        with pacer.slot():  # blocks forever if the in-flight slot had leaked
            pass

    thread = threading.Thread(target=another, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "the failed request kept its in-flight slot"
    assert clock.sleeps == []  # the failed request and this one both fit in the window


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError):
        Pacer(max_requests=0)
    with pytest.raises(ValueError):
        Pacer(max_in_flight=0)


@pytest.fixture
def clean_registry(monkeypatch):
    monkeypatch.setattr(pacing, "_SHARED", {})


def test_shared_pacer_is_one_per_key_and_never_stores_the_key(clean_registry):
    key_a, key_b = "secret-key-aaaaaaaaaaaa", "secret-key-bbbbbbbbbbbb"
    first = shared_pacer(key_a, max_requests=7)
    assert shared_pacer(key_a) is first
    assert first.max_requests == 7
    assert shared_pacer(key_b) is not first
    stored = repr(pacing._SHARED) + "".join(pacing._SHARED)
    assert key_a not in stored
    assert key_b not in stored


def test_backoff_ceiling_doubles_up_to_the_cap():
    backoff = Backoff(base=0.25, cap=8.0)
    assert [backoff.ceiling(n) for n in range(8)] == [0.25, 0.5, 1, 2, 4, 8, 8, 8]
    assert backoff.ceiling(10_000) == 8.0
    assert backoff.delay(3, lambda: 0.5) == 1.0
    rng = random.Random(5)
    assert all(0 <= backoff.delay(n, rng.random) <= backoff.ceiling(n) for n in range(50))


def test_reads_leave_a_tenth_of_the_window_to_urgent_requests():
    clock = FakeClock()
    pacer = Pacer(max_requests=20, per_seconds=60, max_in_flight=4, clock=clock, sleep=clock.sleep)
    for _ in range(18):
        with pacer.slot():
            pass
    assert clock.sleeps == []
    for _ in range(2):  # the reserve: an approved stop does not wait for the next window
        with pacer.slot(urgent=True):
            pass
    assert clock.sleeps == []
    with pacer.slot():  # a read now waits for the oldest request to leave the window
        pass
    assert clock.sleeps and sum(clock.sleeps) > 0
