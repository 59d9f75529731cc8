"""Redis backend: shared state for several web processes on several machines.

Every key starts with a prefix ("ngrok-ops:" by default) so several bots can share one Redis.
Nonces are claimed with `SET NX PX`, which Redis runs atomically. Requests are JSON strings with
a TTL, changed with an optimistic WATCH/MULTI loop so that no JSON passes through Lua (whose
cjson would round floats). Audit rows live in sorted sets scored by ts: one for all rows (the
newest 10,000) and one per session and per user (the newest 1,000, dropped after 90 quiet
days), written together by one Lua script so the indexes never disagree.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from typing import Any, cast
from urllib.parse import urlsplit

import redis

from bot.state.store import (
    StoreError,
    StoreUnavailable,
    audit_users,
    check_audit_entry,
    check_request_record,
    check_ttl,
    clamp_limit,
    new_epoch,
    next_request_record,
)

DEFAULT_PREFIX = "ngrok-ops:"
AUDIT_CAP = 10_000
AUDIT_INDEX_CAP = 1_000
AUDIT_INDEX_TTL_SECONDS = 90 * 24 * 3600

# KEYS[1] = sequence counter, KEYS[2] = all rows, KEYS[3..] = per-session / per-user indexes.
# ARGV = entry json, ts, cap for all rows, cap per index, index ttl.
# The zero-padded sequence makes members unique and breaks ts ties newest-first.
_ADD_AUDIT_LUA = """
local seq = redis.call('INCR', KEYS[1])
local member = string.format('%016d', seq) .. '|' .. ARGV[1]
for i = 2, #KEYS do
    local cap = tonumber(ARGV[3])
    if i > 2 then cap = tonumber(ARGV[4]) end
    redis.call('ZADD', KEYS[i], ARGV[2], member)
    redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -(cap + 1))
    if i > 2 then redis.call('EXPIRE', KEYS[i], ARGV[5]) end
end
return seq
"""


def _location(url: str) -> str:
    """host:port/db for messages; the URL itself may carry a password."""
    parts = urlsplit(url)
    return f"{parts.hostname or '?'}:{parts.port or 6379}{parts.path or ''}"


def _glob_escape(text: str) -> str:
    """A literal prefix inside a Redis MATCH pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _millis(ttl_seconds: float) -> int:
    return max(1, math.ceil(check_ttl(ttl_seconds) * 1000))


class RedisStore:
    """The shared store, used when REDIS_URL is set."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX) -> None:
        self._location = _location(url)
        self._password = urlsplit(url).password or ""
        self._prefix = prefix
        try:
            self._client = redis.Redis.from_url(
                url,
                decode_responses=True,
                socket_timeout=5,
                socket_connect_timeout=5,
                health_check_interval=30,
            )
        except ValueError as exc:
            raise StoreUnavailable(f"REDIS_URL for {self._location} is not a valid URL.") from exc
        self._add_audit_script = self._client.register_script(_ADD_AUDIT_LUA)

    def __repr__(self) -> str:
        return f"RedisStore({self._location!r}, prefix={self._prefix!r})"

    @contextlib.contextmanager
    def _redis_errors(self) -> Iterator[None]:
        """Turn redis-py errors into the store's errors, with any password scrubbed."""
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(
                f"Redis at {self._location} is unreachable: {self._scrub(exc)}"
            ) from None
        except redis.RedisError as exc:
            raise StoreError(f"Redis at {self._location} failed: {self._scrub(exc)}") from None

    def _scrub(self, exc: Exception) -> str:
        text = str(exc) or type(exc).__name__
        return text.replace(self._password, "***") if self._password else text

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    def consume_nonce(self, nonce: str, *, ttl_seconds: float) -> bool:
        with self._redis_errors():
            claimed = self._client.set(
                self._key("nonce", nonce), "1", nx=True, px=_millis(ttl_seconds)
            )
        return bool(claimed)

    def epoch(self) -> str:
        key = self._key("epoch")
        with self._redis_errors():
            # SET NX, then GET: whoever created it first wins. A FLUSHALL between the two
            # leaves nothing to read, so try again (it creates the next epoch).
            for _ in range(3):
                self._client.set(key, new_epoch(), nx=True)
                current = self._client.get(key)
                if current:
                    return str(current)
        raise StoreError(f"Redis at {self._location} keeps losing the store's epoch.")

    def put_request(self, request_id: str, record: dict[str, Any], *, ttl_seconds: float) -> None:
        check_request_record(record)
        raw = json.dumps(record, separators=(",", ":"))
        with self._redis_errors():
            self._client.set(self._key("request", request_id), raw, px=_millis(ttl_seconds))

    def create_request(
        self, request_id: str, record: dict[str, Any], *, ttl_seconds: float
    ) -> bool:
        check_request_record(record)
        raw = json.dumps(record, separators=(",", ":"))
        with self._redis_errors():
            created = self._client.set(
                self._key("request", request_id), raw, nx=True, px=_millis(ttl_seconds)
            )
        return bool(created)

    def find_requests(self, prefix: str) -> list[dict[str, Any]]:
        # SCAN walks the keyspace in small steps; recovery calls this once a minute.
        pattern = self._key("request", _glob_escape(prefix)) + "*"
        with self._redis_errors():
            keys = sorted(cast(list[str], list(self._client.scan_iter(match=pattern, count=500))))
            raws = cast(list[str | None], self._client.mget(keys)) if keys else []
        return [json.loads(raw) for raw in raws if raw is not None]

    def get_request(self, request_id: str) -> dict[str, Any] | None:
        with self._redis_errors():
            raw = self._client.get(self._key("request", request_id))
        return None if raw is None else json.loads(raw)

    def transition_request(
        self, request_id: str, *, expect_state: str, new_state: str, changes: dict[str, Any]
    ) -> dict[str, Any] | None:
        key = self._key("request", request_id)
        with self._redis_errors(), self._client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        return None
                    record = json.loads(raw)
                    if record.get("state") != expect_state:
                        return None
                    updated = next_request_record(record, new_state, changes)
                    pipe.multi()
                    pipe.set(key, json.dumps(updated, separators=(",", ":")), keepttl=True)
                    pipe.execute()
                    return updated
                except redis.WatchError:
                    # Someone changed (or expired) the request between GET and EXEC: look again.
                    continue

    def add_audit(self, entry: dict[str, Any]) -> None:
        ts = check_audit_entry(entry)
        keys = [self._key("audit", "seq"), self._key("audit", "all")]
        session_id = entry.get("session_id")
        if isinstance(session_id, str) and session_id:
            keys.append(self._key("audit", "session", session_id))
        keys.extend(self._key("audit", "user", user) for user in audit_users(entry))
        args: list[str | int | float] = [
            json.dumps(entry, separators=(",", ":")),
            repr(ts),
            AUDIT_CAP,
            AUDIT_INDEX_CAP,
            AUDIT_INDEX_TTL_SECONDS,
        ]
        with self._redis_errors():
            self._add_audit_script(keys=keys, args=args)

    def recent_audit(
        self, *, limit: int = 10, session_id: str | None = None, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        limit = clamp_limit(limit)
        if limit == 0:
            return []
        if session_id is not None:
            key = self._key("audit", "session", session_id)
        elif user_id is not None:
            key = self._key("audit", "user", user_id)
        else:
            key = self._key("audit", "all")
        # With both filters, read the whole (capped) session index and filter by user here.
        end = -1 if session_id is not None and user_id is not None else limit - 1
        with self._redis_errors():
            members = self._client.zrange(key, 0, end, desc=True)
        entries = [json.loads(str(member).split("|", 1)[1]) for member in cast(list[str], members)]
        if session_id is not None and user_id is not None:
            entries = [entry for entry in entries if user_id in audit_users(entry)]
        return entries[:limit]

    def ping(self) -> None:
        with self._redis_errors():
            self._client.ping()

    def persistence_problem(self) -> str | None:
        """Why this Redis may lose the store's data on a restart, or None when it persists.

        Losing it voids open approvals (see bot.state.approvals, the epoch) but also forgets
        requests and the audit trail. Managed Redis services often disable CONFIG; then the
        answer says so instead of guessing.
        """
        try:
            with self._redis_errors():
                aof = self._client.config_get("appendonly").get("appendonly") or ""
                rdb = self._client.config_get("save").get("save") or ""
        except StoreUnavailable:
            raise
        except StoreError:
            return (
                "could not read the persistence settings (CONFIG is disabled here); make sure "
                "this Redis keeps its data across restarts (appendonly yes, or RDB snapshots)"
            )
        if aof == "yes" or rdb.strip():
            return None
        return (
            "persistence is off (appendonly no, no save rules), so a restart empties the store "
            "and voids every open approval; turn on appendonly yes"
        )

    def close(self) -> None:
        self._client.close()
