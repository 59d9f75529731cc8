"""Does a crowd of slow or idle clients, or of huge bodies, delay the ack of a signed command?

Starts a local ngrok API, a local Slack API and the bot from the Procfile's `web:` command,
then measures the HTTP round trip of signed `/ngrok help` slash commands (each on a fresh
connection, one after another) in three scenarios, all in one run against the same process:

1. **baseline**: nothing else connected;
2. **slow clients**: `--slow` connections to 127.0.0.1 held open meanwhile, a quarter each
   sending headers a byte a second, sending headers and then a body a byte a second,
   connected and silent, and idle after one complete keep-alive request; connections the bot
   closes are reopened, so the count stays at `--slow`;
3. **large bodies**: `--large` clients each sending an unsigned 10 MB body (half with
   Content-Length, half chunked) over and over.

It prints ack percentiles and ratios to the baseline, what the large bodies got back, the
bot's memory and how much its stderr grew. Exits 1 when any ack took over 3 s or was not a 200.

    python bench/slow_clients.py [--slow 500] [--commands 20] [--large 8]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ack_latency import NGROK_KEY, bot_env, fmt, no_keepalive_sender, percentile, ratio

from tests.bot_process import BotProcess, SlackSender
from tests.servers.ngrok_api import NgrokApiServer
from tests.servers.slack_api import SlackApiServer

ACK_DEADLINE = 3.0
ACK_GIVE_UP = 10.0  # seconds one command may take before it counts as failed
LARGE_BODY = 10 * 1024 * 1024
USER, CHANNEL = "U0BENCH", "C0BENCH"


def signed_acks(
    sender: SlackSender, slack: SlackApiServer, count: int, spacing: float = 0.75
) -> list[float | None]:
    """`count` signed `/ngrok help` commands, `spacing` s apart: seconds each, None = failed."""
    acks: list[float | None] = []
    for _ in range(count):
        url = slack.response_url()
        body = sender.command_body("help", user=USER, channel=CHANNEL, response_url=url)
        started = time.monotonic()
        try:
            ok = sender.post(body, "application/x-www-form-urlencoded").status_code == 200
        except httpx.HTTPError:
            ok = False
        acks.append(time.monotonic() - started if ok else None)
        time.sleep(spacing)
    return acks


class SlowCrowd:
    """Keeps `size` slow or idle connections open to the bot until stopped (bounded by the
    caller's scenario; every loop iteration sleeps)."""

    KINDS = ("headers", "body", "silent", "keepalive")

    def __init__(self, port: int, size: int) -> None:
        self.port, self.size = port, size
        self.socks: list[tuple[socket.socket, str]] = []
        self.opened = self.closed_by_bot = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SlowCrowd:
        self._thread.start()
        deadline = time.monotonic() + 30
        while len(self.socks) < self.size and time.monotonic() < deadline:
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock, _ in self.socks:
            sock.close()

    def _open(self, kind: str) -> socket.socket | None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        except OSError:
            return None
        self.opened += 1
        try:
            if kind == "headers":
                sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            elif kind == "body":
                head = b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                sock.sendall(head + b"Content-Type: application/json\r\n\r\n{")
            elif kind == "keepalive":  # the answer stays unread: the connection idles after it
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        except OSError:
            sock.close()
            return None
        sock.setblocking(False)
        return sock

    def _alive(self, sock: socket.socket) -> bool:
        try:
            while data := sock.recv(65536):  # answers (a 200, a 408) are read and dropped
                del data
            return False
        except BlockingIOError:
            return True
        except OSError:
            return False

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            kept = []
            for sock, kind in self.socks:
                if not self._alive(sock):
                    sock.close()
                    self.closed_by_bot += 1
                    continue
                if kind in ("headers", "body"):
                    try:
                        sock.send(b"X-a: b\r\n"[:1] if kind == "headers" else b" ")
                    except OSError:
                        sock.close()
                        self.closed_by_bot += 1
                        continue
                kept.append((sock, kind))
            self.socks = kept
            while len(self.socks) < self.size and not self._stop.is_set():
                kind = self.KINDS[n % len(self.KINDS)]
                n += 1
                sock = self._open(kind)
                if sock is None:
                    break
                self.socks.append((sock, kind))
            self._stop.wait(1.0)


class LargeBodies:
    """`clients` threads posting unsigned 10 MB bodies until stopped; counts the answers."""

    def __init__(self, url: str, clients: int) -> None:
        self.url, self.clients = url, clients
        self.answers: Counter[str] = Counter()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i % 2 == 1,), daemon=True)
            for i in range(clients)
        ]

    def __enter__(self) -> LargeBodies:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self, chunked: bool) -> None:
        body = b"text=" + b"A" * LARGE_BODY  # a form field, as in a slash command
        headers = {"content-type": "application/x-www-form-urlencoded"}
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                content: bytes | Callable[[], object] = body
                if chunked:
                    content = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
                try:
                    status = str(
                        client.post(self.url, content=content, headers=headers).status_code
                    )
                except httpx.HTTPError as error:
                    status = type(error).__name__
                self.answers[status] += 1
                self._stop.wait(0.2)


def rss_mib(bot: BotProcess) -> float:
    """Resident memory of the bot's whole process group (master and workers), MiB."""
    assert bot.process is not None
    pids = subprocess.run(
        ["pgrep", "-g", str(bot.process.pid)], capture_output=True, text=True
    ).stdout.split()
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def report(name: str, acks: list[float | None], baseline: list[float] | None) -> int:
    """Prints one scenario; returns the number of acks over 3 s or failed."""
    done = [a for a in acks if a is not None]
    failed = len(acks) - len(done)
    slow = sum(1 for a in done if a > ACK_DEADLINE) + failed
    points = [percentile(done, p) for p in (50, 90)] + [max(done, default=float("nan"))]
    print(
        f"\n== {name} ==\n  acks: {len(acks)}, failed (no 200 within {ACK_GIVE_UP:g} s): ", end=""
    )
    print(f"{failed}, over {ACK_DEADLINE:g} s or failed: {slow}")
    print("  ack          " + "".join(f"{p:>12}" for p in ("p50", "p90", "max")))
    print("  seconds      " + "".join(f"{fmt(v):>12}" for v in points))
    if baseline is not None:
        base = [percentile(baseline, p) for p in (50, 90)] + [max(baseline)]
        pairs = zip(points, base, strict=True)
        print("  vs baseline  " + "".join(f"{ratio(v, b):>12}" for v, b in pairs))
    return slow


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=500, help="slow or idle connections")
    parser.add_argument("--commands", type=int, default=20, help="signed commands per scenario")
    parser.add_argument("--large", type=int, default=8, help="clients sending 10 MB bodies")
    args = parser.parse_args(argv)
    env_args = argparse.Namespace(bot_rate_limit=10_000, bot_in_flight=4, fleet_cache=10.0)
    ngrok = NgrokApiServer(api_key=NGROK_KEY, sessions=20, rate_limit=None)
    slack = SlackApiServer()
    bot: BotProcess | None = None
    with tempfile.TemporaryDirectory(prefix="slow-bench-") as state_dir:
        try:
            ngrok.start()
            slack.start()
            env = {**bot_env(ngrok, slack, state_dir, env_args), "LOG_LEVEL": "INFO"}
            bot = BotProcess(env, log_dir=Path(state_dir)).start()
            print(f"bot: {bot.command}")
            sender = no_keepalive_sender(bot.events_url)
            sender.http = httpx.Client(
                timeout=ACK_GIVE_UP, limits=httpx.Limits(max_keepalive_connections=0)
            )
            signed_acks(sender, slack, 3)  # warm-up, not reported
            baseline = [a for a in signed_acks(sender, slack, args.commands) if a is not None]
            problems = report("baseline: no other clients", baseline, None)
            with SlowCrowd(bot.port, args.slow) as crowd:
                print(f"\n({len(crowd.socks)} slow or idle connections open)")
                acks = signed_acks(sender, slack, args.commands)
                still = len(crowd.socks)
            problems += report(f"{args.slow} slow or idle connections", acks, baseline)
            print(
                f"  connections opened: {crowd.opened}, closed by the bot: {crowd.closed_by_bot}, "
            )
            print(f"  open at the end: {still}")
            rss_before, err_before = rss_mib(bot), len(bot.stderr())
            with LargeBodies(bot.events_url, args.large) as large:
                acks = signed_acks(sender, slack, args.commands)
                rss_during = rss_mib(bot)
            problems += report(f"{args.large} clients sending 10 MB bodies", acks, baseline)
            print(f"  answers to the 10 MB bodies: {dict(large.answers)}")
            print(f"  bot memory: {rss_before:.0f} MiB before, {rss_during:.0f} MiB during")
            print(f"  bot stderr grew by {(len(bot.stderr()) - err_before) / 1024:.0f} KiB")
            print(f"\n{'FAIL' if problems else 'OK'}: {problems} ack(s) over 3 s or failed")
            return 1 if problems else 0
        except KeyboardInterrupt:
            print("\ninterrupted; cleaning up", file=sys.stderr)
            return 130
        finally:
            if bot is not None:
                bot.stop()
            slack.stop()
            ngrok.stop()


if __name__ == "__main__":
    sys.exit(main())
