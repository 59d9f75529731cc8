"""The failures the ngrok API stand-in produces on purpose: limits and injected faults.

Kept apart from ngrok_api.py so the API's normal behaviour reads on its own there, and so every
way a test can make a client suffer is listed in one place: the real API's 429s (ERR_NGROK_226
per key in a sliding window, ERR_NGROK_225 for too many requests in flight) and the faults a
test injects (5xx, an nginx HTML 502, a slow answer, a reset, truncated JSON, ERR_NGROK_810).
"""

from __future__ import annotations

import http
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from bot.demo.fleet import ApiError
from tests.servers.ngrok_http import Reply

SERVER_ERRORS = ("500", "502", "503")
FAULT_KINDS = (*SERVER_ERRORS, "html_502", "timeout", "reset", "malformed_json", "429", "err_810")
HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
MSG_810 = (
    "A network error occurred while delivering the operation to the agent or "
    "reading its response. The agent may be shutting down or reconnecting."
)


class RequestLimits:
    """Sliding-window rate limit per presented key (rejected requests count too) and a cap on
    requests in flight, like the real API's ERR_NGROK_226 and ERR_NGROK_225."""

    def __init__(self, rate_limit: int | None, window: float, max_concurrent: int | None) -> None:
        self.rate_limit, self.window, self.max_concurrent = rate_limit, window, max_concurrent
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}
        self._in_flight = 0

    def over_rate(self, key: str, now: float) -> float | None:
        """Records a request; when over the limit, returns seconds until a slot frees."""
        if self.rate_limit is None:
            return None
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            over = len(hits) >= self.rate_limit
            hits.append(now)
            return hits[len(hits) - self.rate_limit] + self.window - now if over else None

    def enter(self) -> bool:
        with self._lock:
            if self.max_concurrent is not None and self._in_flight >= self.max_concurrent:
                return False
            self._in_flight += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def rate_error(self) -> ApiError:
        """ERR_NGROK_226; an injected "429" fault without a rate limit names the default 120."""
        limit = self.rate_limit or 120
        msg = (
            f"You have exceeded your API rate limit. You are limited to {limit} API requests "
            f"per {self.window:g}s. Please wait and retry your request."
        )
        return ApiError(429, "ERR_NGROK_226", msg)

    def concurrency_error(self) -> ApiError:
        limit = self.max_concurrent
        msg = f"You are limited to {limit} simultaneous API requests. Please retry later."
        return ApiError(429, "ERR_NGROK_225", msg)


@dataclass
class Fault:
    """One injected fault; it fires on the next `remaining` requests it matches."""

    kind: str
    method: str | None
    path_contains: str | None
    remaining: int
    delay: float

    def matches(self, method: str, path: str, *, is_action: bool) -> bool:
        if self.kind == "err_810" and not is_action:
            return False
        return (self.method is None or self.method.upper() == method) and (
            self.path_contains is None or self.path_contains in path
        )


class FaultQueue:
    """Injected faults in the order they were added; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self, kind: str, *, method: str | None, path_contains: str | None, times: int, delay: float
    ) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        with self._lock:
            self._faults.append(Fault(kind, method, path_contains, times, delay))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str, *, is_action: bool) -> Fault | None:
        """The first matching fault with uses left, using one up; `is_action`: an agent
        operation (POST .../{id}/restart|stop|update), the only thing ERR_NGROK_810 hits."""
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.matches(method, path, is_action=is_action):
                    fault.remaining -= 1
                    return fault
        return None


def answer_with_fault(
    fault: Fault | None,
    handle: Callable[[], Reply],
    error: Callable[[ApiError], Reply],
    rate_limited: Callable[[float], Reply],
) -> Reply | None:
    """The reply when `fault` fires (None: drop the connection). `handle` gives the normal
    reply, `error` renders an API error and `rate_limited` a 429 with the given wait."""
    kind = fault.kind if fault else ""
    if kind == "reset":
        return None
    if kind in SERVER_ERRORS:
        status = int(kind)
        return error(ApiError(status, None, http.HTTPStatus(status).phrase))
    if kind == "html_502":
        return Reply(502, HTML_502, "text/html; charset=utf-8")
    if kind == "429":
        return rate_limited(1.0)
    if kind == "timeout" and fault:
        time.sleep(fault.delay)
    reply = handle()
    if kind == "malformed_json":
        full = reply.body or b'{"tunnel_sessions":[{"id":"ts_'
        return Reply(200, full[: max(1, len(full) // 2)], headers=reply.headers)
    if kind == "err_810" and reply.status == 204:
        return error(ApiError(502, "ERR_NGROK_810", MSG_810))
    return reply
