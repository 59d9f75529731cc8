"""Pytest fixtures for the ngrok API stand-in: one fresh server per test, always stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.servers.ngrok_api import NgrokApiServer


@pytest.fixture
def ngrok_api() -> Iterator[NgrokApiServer]:
    """A started server with 30 sessions and a quick (0.1 s) restart."""
    with NgrokApiServer(sessions=30, restart_delay=0.1) as server:
        yield server


@pytest.fixture
def ngrok_api_factory() -> Iterator[Callable[..., NgrokApiServer]]:
    """`factory(**NgrokApiServer kwargs)` -> a started server; all are stopped at teardown."""
    started: list[NgrokApiServer] = []

    def factory(**kwargs: Any) -> NgrokApiServer:
        server = NgrokApiServer(**kwargs).start()
        started.append(server)
        return server

    yield factory
    for server in reversed(started):
        server.stop()
