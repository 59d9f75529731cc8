"""Shared fixtures: each local server owns its fixture module under tests/servers/."""

pytest_plugins = [
    "tests.servers.ngrok_api_fixture",
    "tests.servers.slack_api_fixture",
    "tests.servers.redis_fixture",
    "tests.e2e_fixtures",
]
