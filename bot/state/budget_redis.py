"""The shared ngrok budget in Redis: every process on every machine.

One sorted set per account; members are `f:<token>` while in flight (scored by the lease's
end) and `d:<token>` once done (scored by the finish time). Claim and finish are Lua scripts,
so Redis runs each atomically, and they read the time from Redis (`TIME`), so machines whose
clocks disagree still share one window. The claim script is `window_wait` in Lua.
"""

from __future__ import annotations

import uuid
from typing import Any

import redis

from bot.ngrok.pacing import IN_FLIGHT_POLL
from bot.state.store import StoreUnavailable
from bot.state.store_redis import DEFAULT_PREFIX, _location

# KEYS[1] = the account's sorted set. ARGV = limit, per_seconds, lease_seconds, token, poll.
# Returns {1, "0"} when a place was taken, else {0, seconds to wait as a string}.
_CLAIM_LUA = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit, per, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - per)
local over = redis.call('ZCARD', KEYS[1]) - limit
if over < 0 then
    redis.call('ZADD', KEYS[1], now + lease, 'f:' .. ARGV[4])
    redis.call('PEXPIRE', KEYS[1], math.ceil((per + lease) * 1000))
    return {1, '0'}
end
local entry = redis.call('ZRANGE', KEYS[1], over, over, 'WITHSCORES')
if string.sub(entry[1], 1, 2) ~= 'd:' then
    return {0, ARGV[5]}
end
return {0, tostring(math.max(tonumber(entry[2]) + per - now, 0.001))}
"""

# KEYS[1] = the account's sorted set. ARGV = token, seconds to keep the set after this.
_FINISH_LUA = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREM', KEYS[1], 'f:' .. ARGV[1])
redis.call('ZADD', KEYS[1], now, 'd:' .. ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000))
return 1
"""

# KEYS[1] = the account's sorted set. ARGV = per_seconds.
_USED_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
return redis.call('ZCOUNT', KEYS[1], '(' .. tostring(now - tonumber(ARGV[1])), '+inf')
"""


class RedisBudgetLog:
    """The log of counted requests as one Redis sorted set per account."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX) -> None:
        self._location = _location(url)
        self._prefix = prefix
        self._keep_seconds = 120.0  # window + lease of the last claim: how long a set matters
        try:
            self._client = redis.Redis.from_url(
                url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5
            )
        except ValueError as exc:
            raise StoreUnavailable(f"REDIS_URL for {self._location} is not a valid URL.") from exc
        self._claim = self._client.register_script(_CLAIM_LUA)
        self._finish = self._client.register_script(_FINISH_LUA)
        self._used = self._client.register_script(_USED_LUA)

    def __repr__(self) -> str:
        return f"RedisBudgetLog({self._location!r}, prefix={self._prefix!r})"

    def _key(self, account: str) -> str:
        return f"{self._prefix}ngrok-budget:{account}"

    def _run(self, script: Any, account: str, *args: object) -> Any:
        """Runs a script; redis-py errors become StoreUnavailable naming host:port only."""
        try:
            return script(keys=[self._key(account)], args=list(args))
        except redis.RedisError as exc:
            raise StoreUnavailable(
                f"The ngrok budget in Redis at {self._location} cannot be used "
                f"({type(exc).__name__})."
            ) from exc

    def claim(
        self, account: str, *, limit: int, per_seconds: float, lease_seconds: float
    ) -> tuple[str | None, float]:
        token = uuid.uuid4().hex
        self._keep_seconds = per_seconds + lease_seconds
        taken, wait = self._run(
            self._claim, account, limit, repr(per_seconds), repr(lease_seconds), token,
            repr(IN_FLIGHT_POLL),
        )  # fmt: skip
        return (token, 0.0) if int(taken) == 1 else (None, float(wait))

    def finish(self, account: str, token: str) -> None:
        self._run(self._finish, account, token, repr(self._keep_seconds))

    def used(self, account: str, *, per_seconds: float) -> int:
        return int(self._run(self._used, account, repr(per_seconds)))

    def close(self) -> None:
        self._client.close()
