"""Finding 4, the operator's side: `python -m bot check` warns when Redis would forget the
store's data on a restart (which voids every open approval)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import redis

from bot.doctor import _redis_persistence, format_table
from bot.state.store_redis import RedisStore


@pytest.fixture
def admin(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.config_set("appendonly", "no")  # the session's server runs without persistence
    client.acl_deluser("doctor-test")
    client.close()


def test_check_warns_when_redis_persistence_is_off(redis_url):
    row = _redis_persistence(redis_url)
    assert row[0] == "redis persistence" and row[1] is None
    assert "persistence is off" in row[2] and "appendonly yes" in row[2]
    assert " WARN " in format_table([row])


def test_check_is_quiet_when_redis_keeps_its_data(redis_url, admin):
    admin.config_set("appendonly", "yes")
    assert _redis_persistence(redis_url)[1] is True


def test_a_managed_redis_without_config_gets_a_warning_not_a_failure(redis_url, admin):
    admin.acl_setuser(
        "doctor-test", enabled=True, passwords=["+doctor-pass-123"], keys=["*"],
        commands=["+@all", "-config"],
    )  # fmt: skip
    parts = urlsplit(redis_url)
    limited = f"redis://doctor-test:doctor-pass-123@{parts.hostname}:{parts.port}/0"
    problem = RedisStore(limited).persistence_problem()
    assert problem is not None and "CONFIG is disabled" in problem
    assert "doctor-pass-123" not in problem
