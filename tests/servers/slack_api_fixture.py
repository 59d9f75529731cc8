"""Pytest plugin: local Slack Web API / response_url / Socket Mode stand-ins.

``slack_api`` is a started ``SlackApiServer`` with default tokens; ``slack_api_factory(**kw)``
starts more (other tokens, usergroups). Every server is stopped when its test ends, so no
port or recorded call leaks into the next test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.servers.slack_api import SlackApiServer


@pytest.fixture
def slack_api_factory() -> Iterator[Callable[..., SlackApiServer]]:
    started: list[SlackApiServer] = []

    def start(**options: object) -> SlackApiServer:
        server = SlackApiServer(**options).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def slack_api(slack_api_factory: Callable[..., SlackApiServer]) -> SlackApiServer:
    return slack_api_factory()
