"""FleetCache: one scan for concurrent identical lists, reuse within the TTL, and a fresh
scan after an action on the account."""

from __future__ import annotations

import threading
import time

import pytest

from bot.ngrok.fleet_cache import FleetCache
from bot.ngrok.models import TunnelSession


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def scanner(result: list[TunnelSession], calls: list[int], gate: threading.Event | None = None):
    def scan() -> list[TunnelSession]:
        calls.append(1)
        if gate is not None:
            gate.wait(5)
        return result

    return scan


SESSIONS = [TunnelSession(id="ts_" + "A" * 27), TunnelSession(id="ts_" + "B" * 27)]


def test_concurrent_callers_share_one_scan():
    cache, calls, gate = FleetCache(ttl_seconds=10), [], threading.Event()
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(cache.get("prod", None, scanner(SESSIONS, calls, gate)))
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    gate.set()
    for thread in threads:
        thread.join(5)
    assert len(calls) == 1
    assert results == [SESSIONS] * 8


def test_reuse_within_ttl_and_rescan_after_it():
    clock = FakeClock()
    cache, calls = FleetCache(ttl_seconds=10, clock=clock), []
    cache.get("prod", None, scanner(SESSIONS, calls))
    clock.now += 9
    cache.get("prod", None, scanner(SESSIONS, calls))
    assert len(calls) == 1
    clock.now += 2
    cache.get("prod", None, scanner(SESSIONS, calls))
    assert len(calls) == 2


def test_filters_and_accounts_are_separate_and_invalidate_is_per_account():
    cache, calls = FleetCache(ttl_seconds=10), []
    cache.get("prod", None, scanner(SESSIONS, calls))
    cache.get("prod", 'obj.os == "linux"', scanner(SESSIONS, calls))
    cache.get("staging", None, scanner(SESSIONS, calls))
    assert len(calls) == 3
    cache.invalidate("prod")
    cache.get("staging", None, scanner(SESSIONS, calls))
    assert len(calls) == 3
    cache.get("prod", None, scanner(SESSIONS, calls))
    assert len(calls) == 4


def test_a_failed_scan_reaches_every_waiter_and_is_not_cached():
    cache, calls = FleetCache(ttl_seconds=10), []

    def broken() -> list[TunnelSession]:
        calls.append(1)
        raise RuntimeError("ngrok down")

    with pytest.raises(RuntimeError):
        cache.get("prod", None, broken)
    assert cache.get("prod", None, scanner(SESSIONS, calls)) == SESSIONS
    assert len(calls) == 2


def test_callers_cannot_change_the_cached_list():
    cache, calls = FleetCache(ttl_seconds=10), []
    first = cache.get("prod", None, scanner(list(SESSIONS), calls))
    first.clear()
    assert cache.get("prod", None, scanner(SESSIONS, calls)) == SESSIONS


def test_scans_past_their_ttl_are_dropped_so_typed_filters_do_not_pile_up():
    clock = FakeClock()
    cache, calls = FleetCache(ttl_seconds=10, clock=clock), []
    for n in range(50):
        cache.get("prod", f'obj.ip == "10.0.0.{n}"', scanner(SESSIONS, calls))
    clock.now += 11
    cache.get("prod", None, scanner(SESSIONS, calls))
    assert len(cache._entries) == 1
