"""Which job consumer runs a job, and whether it is still alive.

huey has no acknowledgements: a consumer killed with SIGKILL (OOM, a crash) takes the jobs it
was running with it. Work that must not vanish silently records its owner, a `ConsumerId`
(host, pid and a token drawn when the process first asks, so a reused pid is a different
consumer), and every consumer says it is alive in the store every few seconds
(`consumer:<id>`, kept for a few minutes). An owner is dead when it ran on this host and its
pid is gone, or when its last heartbeat is older than STALE_SECONDS. This process itself is
never dead to itself: consumer threads inside a test process or the console run jobs
without a heartbeat thread, and their own recovery must not judge them.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.state.store import Store

log = logging.getLogger("ngrok_ops.consumers")

BEAT_PREFIX = "consumer:"
BEAT_SECONDS = 5.0
STALE_SECONDS = 30.0  # six missed beats: the process is gone or wedged
BEAT_TTL_SECONDS = 600.0


@dataclass(frozen=True)
class ConsumerId:
    """One consumer process: where it runs and which incarnation of that pid it is."""

    host: str
    pid: int
    token: str

    @property
    def key(self) -> str:
        return f"{self.host}:{self.pid}:{self.token}"

    def to_data(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "token": self.token}

    @classmethod
    def from_data(cls, data: object) -> ConsumerId | None:
        """None for anything malformed (such an owner cannot be shown to be alive)."""
        if not isinstance(data, Mapping):
            return None
        host, pid, token = data.get("host"), data.get("pid"), data.get("token")
        if not isinstance(host, str) or not isinstance(token, str):
            return None
        if isinstance(pid, bool) or not isinstance(pid, int):
            return None
        return cls(host, pid, token)


_me: ConsumerId | None = None
_me_lock = threading.Lock()


def this_consumer() -> ConsumerId:
    """This process's id; drawn anew in a forked child, whose pid differs."""
    global _me
    with _me_lock:
        if _me is None or _me.pid != os.getpid():
            _me = ConsumerId(socket.gethostname(), os.getpid(), secrets.token_hex(6))
        return _me


def beat(store: Store, consumer: ConsumerId, now: float) -> None:
    """`consumer` is alive at `now`."""
    record = {"state": "alive", "beat": now, **consumer.to_data()}
    store.put_request(BEAT_PREFIX + consumer.key, record, ttl_seconds=BEAT_TTL_SECONDS)


def last_beat(store: Store, consumer: ConsumerId) -> float | None:
    record = store.get_request(BEAT_PREFIX + consumer.key)
    value = (record or {}).get("beat")
    return float(value) if isinstance(value, int | float) else None


def pid_running(pid: int) -> bool:
    """Whether a process with this pid exists on this host (signal 0 checks, sends nothing)."""
    if pid <= 0:
        return False  # os.kill(0, …) would address our own process group
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


def is_dead(
    store: Store,
    owner: ConsumerId,
    now: float,
    *,
    me: ConsumerId,
    running: Callable[[int], bool] = pid_running,
) -> bool:
    """True when `owner` can no longer finish what it started (see the module's notes)."""
    if owner == me:
        return False
    if owner.host == me.host and not running(owner.pid):
        return True
    seen = last_beat(store, owner)
    return seen is None or now - seen > STALE_SECONDS


def start_heartbeat(
    store: Store,
    clock: Callable[[], float],
    *,
    also: Callable[[], None] | None = None,
    interval: float = BEAT_SECONDS,
) -> Callable[[], None]:
    """Beats now and then every `interval` s in a daemon thread (`also` runs beside each beat,
    e.g. the queue's own heartbeat that `check` reads); returns the stop function."""
    stop = threading.Event()
    me = this_consumer()

    def once() -> None:
        try:
            beat(store, me, clock())
            if also is not None:
                also()
        except Exception:  # a heartbeat that failed once must not stop beating
            log.exception("could not write the consumer heartbeat")

    def loop() -> None:
        while not stop.wait(interval):
            once()

    once()
    threading.Thread(target=loop, name="consumer-heartbeat", daemon=True).start()
    return stop.set
