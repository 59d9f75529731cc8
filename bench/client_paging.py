"""What NgrokClient.iter_sessions costs over a whole fleet, against plain httpx paging.

A local ngrok API holds 2,000 sessions (20 pages of 100). The baseline is the least any
client can do: one keep-alive httpx.Client following `next_page_uri` and decoding JSON. The
bot's client adds pacing, retries, dataclasses and URI checks; the ratio says what they cost.
Both run against the same server in the same run (the machine is shared and noisy), with
TLS off and on, and once more with the default pacer (120 per 60 s) to show that a 20-page
scan is not throttled by it.

    python bench/client_paging.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.ngrok.client import NgrokClient
from bot.ngrok.pacing import Pacer
from tests.servers.ngrok_api import NgrokApiServer

SESSIONS = 2_000
PAGE_SIZE = 100
PAGES = SESSIONS // PAGE_SIZE
API_KEY = "ngrok-bench-api-key-0123456789"
DEFAULT_PACER_SCANS = 4


def plain_scan(server: NgrokApiServer, http: httpx.Client) -> int:
    """Follows next_page_uri with one keep-alive client; returns the number of sessions."""
    count = 0
    url: str | None = f"{server.base_url}/tunnel_sessions?limit={PAGE_SIZE}"
    while url:
        response = http.get(url)
        response.raise_for_status()
        body = response.json()
        count += len(body["tunnel_sessions"])
        url = body.get("next_page_uri")
    return count


def client_scan(client: NgrokClient) -> int:
    return sum(1 for _ in client.iter_sessions(page_size=PAGE_SIZE))


def timed(scan: Callable[[], int]) -> float:
    """Seconds for one full scan, which must see the whole fleet."""
    started = time.perf_counter()
    seen = scan()
    seconds = time.perf_counter() - started
    if seen != SESSIONS:
        raise SystemExit(f"a scan saw {seen} sessions, expected {SESSIONS}")
    return seconds


def interleaved(repeats: int, *scans: Callable[[], int]) -> list[tuple[float, float]]:
    """(best, median) per scan, taking turns so that drift in the machine's load hits all
    of them alike; one untimed warm-up each (connections, TLS handshakes, server threads)."""
    for scan in scans:
        scan()
    times: list[list[float]] = [[] for _ in scans]
    for _ in range(repeats):
        for index, scan in enumerate(scans):
            times[index].append(timed(scan))
    return [(min(t), statistics.median(t)) for t in times]


def verify_for(server: NgrokApiServer) -> ssl.SSLContext | bool:
    return (
        ssl.create_default_context(cafile=server.ca_bundle_path) if server.ca_bundle_path else True
    )


def line(label: str, seconds: tuple[float, float], base: tuple[float, float] | None) -> None:
    fastest, median = seconds
    text = f"  {label:<36} best {fastest * 1000:7.1f} ms  median {median * 1000:7.1f} ms"
    text += f"  {PAGES / median:6.0f} pages/s"
    if base is not None:
        text += f"  ratio best {fastest / base[0]:4.2f}x median {median / base[1]:4.2f}x"
    print(text)


def bench_server(tls: bool, repeats: int) -> None:
    with NgrokApiServer(api_key=API_KEY, sessions=SESSIONS, rate_limit=None, tls=tls) as server:
        verify = server.ca_bundle_path or True
        print(f"\n== TLS {'on' if tls else 'off'}: {SESSIONS} sessions, {PAGES} pages ==")
        open_pacer = Pacer(max_requests=10_000, per_seconds=60.0)
        with (
            httpx.Client(headers=server.client_headers(), verify=verify_for(server)) as http,
            NgrokClient(
                API_KEY, base_url=server.base_url, verify=verify, pacer=open_pacer
            ) as ngrok,
        ):
            base, client = interleaved(
                repeats, lambda: plain_scan(server, http), lambda: client_scan(ngrok)
            )
        line("httpx GETs (baseline)", base, None)
        line("NgrokClient, pacer 10000/60 s", client, base)
        waits: list[float] = []  # every wait the pacer asks for; a throttled scan adds some

        def pacer_sleep(seconds: float) -> None:
            waits.append(seconds)
            time.sleep(seconds)

        default_pacer = Pacer(sleep=pacer_sleep)  # 120 per 60 s, 4 in flight: the bot's defaults
        with (
            httpx.Client(headers=server.client_headers(), verify=verify_for(server)) as http,
            NgrokClient(
                API_KEY, base_url=server.base_url, verify=verify, pacer=default_pacer
            ) as ngrok,
        ):
            # 1 warm-up + DEFAULT_PACER_SCANS scans of 20 pages stay under 120 requests.
            base, paced = interleaved(
                DEFAULT_PACER_SCANS, lambda: plain_scan(server, http), lambda: client_scan(ngrok)
            )
        line(f"httpx GETs (baseline, {DEFAULT_PACER_SCANS} scans)", base, None)
        line("NgrokClient, default pacer 120/60 s", paced, base)
        print(f"  default pacer: {len(waits)} waits ({sum(waits):.2f} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed scans per variant")
    args = parser.parse_args(argv)
    for tls in (False, True):
        bench_server(tls, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
