"""The job engine: huey, on SQLite beside the state file by default and on Redis when
REDIS_URL is set, so every web process and consumer on every machine shares one queue and
one schedule, and work that was promised (an update's restart, a request's expiry) is kept
in that storage instead of in a timer that a deploy would kill.

Everything after an ack is a job: a name and a JSON payload. Handlers are registered by name
(commands/ does that through the composition root), and whichever process consumes the job
runs it with its own Deps. Payloads are JSON, never pickle: whoever can write to the queue's
SQLite file or Redis must not be able to run code in the bot, so `JsonSerializer` rebuilds
nothing but huey's own message tuple and datetimes.

Two lanes, each its own huey queue (`QUEUE_NAMES`) with its own schedule and its own
consumer threads in every consumer process: `urgent` for what an approved action needs (the
click that approves it, its follow-up reads, an update's restart, recovery, decisions) and
`normal` for everything else (listings, details, Home, the watcher, fleet-run ticks). A
job's lane is part of its registration. Priority within one queue would not be enough: when
hundreds of listings are queued, every normal thread may be inside one, waiting for the
non-urgent part of the ngrok budget, and an approval would still wait for a thread. The
urgent lane's threads take nothing else, so an approval waits for neither.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from huey import Huey, MemoryHuey, RedisHuey, crontab
from huey.api import Task
from huey.consumer import Consumer
from huey.registry import Message
from huey.serializer import Serializer
from huey.signals import SIGNAL_COMPLETE, SIGNAL_ERROR, SIGNAL_EXECUTING, SIGNAL_INTERRUPTED

from bot.queue_file import QueueFile, queue_path

log = logging.getLogger("ngrok_ops.jobs")

Payload = dict[str, Any]
JobHandler = Callable[[Payload], None]
ErrorHandler = Callable[[Payload, Exception], None]
Lane = Literal["urgent", "normal"]
LANES: tuple[Lane, ...] = ("urgent", "normal")
# The normal lane keeps the queue name of the one queue before lanes, so jobs queued or
# scheduled by an older version still run after a deploy.
QUEUE_NAMES: dict[Lane, str] = {"normal": "ngrok-ops", "urgent": "ngrok-ops-urgent"}
HEARTBEAT_KEY = "consumer-heartbeat"
# How long an idle consumer waits between two looks at a SQLite queue: the worst-case extra
# latency of a reply. Redis blocks on the queue instead, so it has none.
POLL_SECONDS = 0.05


class JsonSerializer(Serializer):
    """JSON for everything huey stores; refuses anything that is not plain data."""

    def _serialize(self, data: Any) -> bytes:
        return json.dumps(_encode(data), separators=(",", ":")).encode()

    def _deserialize(self, data: bytes) -> Any:
        return _decode(json.loads(data))


def _encode(value: Any) -> Any:
    if isinstance(value, Message):
        return {"__message__": [_encode(v) for v in value]}
    if isinstance(value, dt.datetime):
        return {"__datetime__": value.isoformat()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("job payload keys must be strings")
        return {k: _encode(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"a job payload must be plain JSON data, not {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__message__"}:
            return Message(*[_decode(v) for v in value["__message__"]])
        if set(value) == {"__datetime__"}:
            return dt.datetime.fromisoformat(value["__datetime__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def open_queues(
    *, redis_url: str | None, sqlite_path: str, memory: bool = False
) -> dict[Lane, Huey]:
    """The lanes' queues every process of this deployment shares: both in one SQLite file or
    one Redis (memory: this process only, for tests and the console)."""
    where: dict[str, Any] = {"redis_url": redis_url, "sqlite_path": sqlite_path, "memory": memory}
    return {lane: open_queue(QUEUE_NAMES[lane], **where) for lane in LANES}


def open_queue(name: str, *, redis_url: str | None, sqlite_path: str, memory: bool = False) -> Huey:
    """One named queue (a lane) with JSON payloads and no stored results."""
    options: dict[str, Any] = {"results": False, "serializer": JsonSerializer(), "utc": True}
    if memory:
        return MemoryHuey(name, **options)
    if redis_url:
        return RedisHuey(name, url=redis_url, blocking=True, read_timeout=1, **options)
    return Huey(name, storage_class=QueueFile, filename=queue_path(sqlite_path), **options)


class LaneConsumer(Consumer):
    """huey's consumer of the normal lane, which also starts, health-checks and stops the
    urgent lane's consumer in the same process: huey serves one queue per Consumer, and only
    one of them may own the process's signal handlers and run loop."""

    def __init__(self, huey: Huey, companion: Consumer, **options: Any) -> None:
        self.companion = companion
        super().__init__(huey, **options)

    def start(self) -> None:
        start_consumer_threads(self.companion)
        super().start()

    def check_worker_health(self) -> bool:
        self.companion.check_worker_health()
        return bool(super().check_worker_health())

    def stop(self, graceful: bool = False) -> None:
        """Neither lane starts a job from now on; both finish what they run (graceful)
        within one shutdown_timeout, which the supervisor's own deadline counts on."""
        started = time.monotonic()
        self.companion.stop_flag.set()
        super().stop(graceful)
        if self.shutdown_timeout is not None:
            spent = time.monotonic() - started
            self.companion.shutdown_timeout = max(0.0, self.shutdown_timeout - spent)
        self.companion.stop(graceful)


def start_consumer_threads(consumer: Consumer) -> None:
    """A consumer's scheduler and workers, without Consumer.start()'s signal handlers."""
    consumer.scheduler.start()
    for _, worker in consumer.worker_threads:
        worker.start()


class Jobs:
    """Named jobs with JSON payloads, each in its lane's huey queue; thread-safe."""

    def __init__(
        self, queues: Mapping[Lane, Huey], *, clock: Callable[[], float] = time.time
    ) -> None:
        self.queues = dict(queues)
        self.huey = self.queues["normal"]  # the heartbeat lives here
        self._clock = clock
        self._handlers: dict[str, tuple[JobHandler, ErrorHandler | None]] = {}
        self._lanes: dict[str, Lane] = {}
        self._every_minute: list[str] = []
        self._running = 0
        self._idle = threading.Condition()
        self._tasks = {
            lane: huey.task(name="ngrok_ops.job")(self._run) for lane, huey in self.queues.items()
        }
        # The minute's tick only submits jobs, each into its own lane; it runs in the urgent
        # lane so that recovery is never queued behind listings.
        self.queues["urgent"].periodic_task(crontab(), name="ngrok_ops.every_minute")(self._tick)
        for huey in self.queues.values():
            huey.signal(SIGNAL_EXECUTING)(self._started)
            huey.signal(SIGNAL_COMPLETE, SIGNAL_ERROR, SIGNAL_INTERRUPTED)(self._finished)

    # -- registration --------------------------------------------------------------------------

    def register(
        self,
        name: str,
        handler: JobHandler,
        *,
        on_error: ErrorHandler | None = None,
        lane: Lane = "normal",
    ) -> None:
        """`on_error` gets the payload and the error when the handler raised, so someone
        hears about it. `lane="urgent"` only for work that must not wait behind listings and
        that never waits for the non-urgent ngrok budget itself (it would hold an urgent
        thread while it waits)."""
        self._handlers[name] = (handler, on_error)
        self._lanes[name] = lane

    def lane_of(self, name: str) -> Lane:
        self._check(name)
        return self._lanes[name]

    def every_minute(self, name: str) -> None:
        """Runs the job `name` (payload {}) once a minute on one consumer (huey's scheduler)."""
        self._every_minute.append(name)

    # -- producing -----------------------------------------------------------------------------

    def submit(self, name: str, payload: Payload) -> None:
        self._tasks[self.lane_of(name)](name, payload)

    def later(self, delay: float, name: str, payload: Payload) -> None:
        """Kept in the queue's storage, so it runs after a deploy or a crash too."""
        self._tasks[self.lane_of(name)].schedule(args=(name, payload), delay=max(delay, 0.0))

    def _check(self, name: str) -> None:
        if name not in self._handlers:
            raise KeyError(f"no job handler registered for {name!r}")

    # -- consuming -----------------------------------------------------------------------------

    def run_now(self, name: str, payload: Payload) -> None:
        """Runs a job in this thread (a consumer's start-up recovery, tests)."""
        self._run(name, payload)

    def _run(self, name: str, payload: Payload) -> None:
        entry = self._handlers.get(name)
        if entry is None:
            log.error("dropped job %s: no handler is registered in this process", name)
            return
        handler, on_error = entry
        try:
            handler(payload)
        except Exception as error:
            # Logged here with the job's name; huey would only log its own task id.
            log.exception("job %s failed", name)
            if on_error is not None:
                try:
                    on_error(payload, error)
                except Exception:
                    log.exception("could not report the failure of job %s", name)

    def _tick(self) -> None:
        for name in self._every_minute:
            self.submit(name, {})

    def _started(self, signal: str, task: Task, *args: Any) -> None:
        with self._idle:
            self._running += 1

    def _finished(self, signal: str, task: Task, *args: Any) -> None:
        with self._idle:
            self._running = max(0, self._running - 1)
            self._idle.notify_all()

    def on_worker_start(self, lane: Lane, hook: Callable[[], None]) -> None:
        """`hook` runs in each of the lane's worker threads as it starts (huey's startup
        hooks), including threads the health check starts again."""
        self.queues[lane].on_startup(f"ngrok_ops.{lane}.{getattr(hook, '__name__', 'hook')}")(hook)

    def consumer(self, *, workers: int, urgent_workers: int) -> LaneConsumer:
        """Both lanes' huey consumers, tuned for chat replies: an idle SQLite queue is looked
        at every POLL_SECONDS instead of backing off to huey's default of 10 s. Only the
        urgent lane's scheduler enqueues the minute's tick."""
        options: dict[str, Any] = {
            "worker_type": "thread",
            "initial_delay": POLL_SECONDS,
            "backoff": 1.0,
            "max_delay": POLL_SECONDS,
            "check_worker_health": True,
            "shutdown_timeout": 20,
            "graceful_signal": "TERM",
        }
        urgent = self.queues["urgent"].create_consumer(
            workers=urgent_workers, periodic=True, **options
        )
        return LaneConsumer(
            self.queues["normal"], urgent, workers=workers, periodic=False, **options
        )

    def start_threads(self, *, workers: int, urgent_workers: int = 1) -> Callable[[], None]:
        """Consumes in this process's threads (tests, the console); returns a stop function.
        Consumer.start() would take over the process's signal handlers, so only the lanes'
        schedulers and workers are started here."""
        consumer = self.consumer(workers=workers, urgent_workers=urgent_workers)
        lanes = (consumer.companion, consumer)
        for lane in lanes:
            start_consumer_threads(lane)

        def stop() -> None:
            for lane in lanes:
                lane.stop_flag.set()
            for lane in lanes:
                lane.scheduler.join(5)
                for _, worker in lane.worker_threads:
                    worker.join(5)

        return stop

    # -- observing -----------------------------------------------------------------------------

    def backlog(self, lane: Lane | None = None) -> int:
        """Jobs waiting to start in one lane or in both (scheduled ones not counted)."""
        lanes = LANES if lane is None else (lane,)
        return sum(int(self.queues[each].pending_count()) for each in lanes)

    def scheduled(self, lane: Lane | None = None) -> int:
        lanes = LANES if lane is None else (lane,)
        return sum(int(self.queues[each].scheduled_count()) for each in lanes)

    def beat(self) -> None:
        """A consumer says it is alive; `check` reads it."""
        self.huey.put(HEARTBEAT_KEY, self._clock())

    def last_beat(self) -> float | None:
        value = self.huey.get(HEARTBEAT_KEY, peek=True)
        return float(value) if isinstance(value, int | float) else None

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is queued or running in this process's consumer threads and no
        scheduled job falls due within `timeout` (tests and the console wait on this instead
        of sleeping). Idle must be seen twice in a row: a worker that has just taken a job
        off the queue has not started it yet."""
        deadline = time.monotonic() + timeout
        idle_before = False
        while time.monotonic() < deadline:
            with self._idle:
                busy = self._running
            idle = not busy and not self.backlog() and not self._due_within(timeout)
            if idle and idle_before:
                return True
            idle_before = idle
            with self._idle:
                self._idle.wait(POLL_SECONDS * 2)
        return False

    def _due_within(self, seconds: float) -> bool:
        horizon = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=seconds)
        return any(
            task.eta is None or task.eta <= horizon
            for huey in self.queues.values()
            for task in huey.scheduled()
        )

    def close(self) -> None:
        for huey in self.queues.values():
            huey.storage.close()
