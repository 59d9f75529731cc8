"""How the `web:` process reads requests, so that slow or idle clients cannot hold the threads
that run Bolt.

gunicorn's gthread worker hands a connection to a thread as soon as its first byte arrives,
and the thread then blocks in the request parser with no read timeout: 32 clients that send
half a request stall every ack. gunicorn's own asyncio worker (`gunicorn.workers.gasgi`)
reads requests on an event loop instead, so this module only adds what it lacks:

- a deadline for the headers of a connection's first request (gunicorn's keep-alive timer
  covers the later ones, but nothing covers the first: a client that sends half a request
  line would keep its connection forever);
- `buffered_wsgi`: an ASGI app that reads the whole body on the event loop, under a size cap
  and a deadline, and only then runs the WSGI app on a thread, which hands back the whole
  response at once. a2wsgi's `build_environ` makes the environ; its WSGIMiddleware is not
  used because it reads the body from the thread (a slow body would hold it) and crosses
  between thread and loop for every message, which made acks 1.3x to 2.8x slower under load
  (bench/ack_latency.py).
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from a2wsgi.wsgi import build_environ
from gunicorn.asgi.protocol import ASGIProtocol
from gunicorn.workers import gasgi

MAX_BODY_BYTES = 1024 * 1024  # Slack's largest payloads (a view_submission) stay far below
HEADER_TIMEOUT = 10.0  # seconds for a new connection to send its request line and headers
BODY_TIMEOUT = 10.0  # seconds for a whole body to arrive once the headers are in
SHUTDOWN_LINGER = 1.0  # seconds idle connections stay open after SIGTERM

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]
WsgiApp = Callable[..., Any]

log = logging.getLogger("ngrok_ops.http")
_OPEN_CONNECTIONS: set[HeaderDeadlineProtocol] = set()  # this worker's, for the shutdown


class HeaderDeadlineProtocol(ASGIProtocol):
    """gunicorn's asyncio HTTP/1 protocol, closing connections whose first request's headers
    do not arrive within HEADER_TIMEOUT (slowloris, idle sockets that never send)."""

    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Arms the deadline; the keep-alive timer takes over after the first request."""
        super().connection_made(transport)
        _OPEN_CONNECTIONS.add(self)
        if self._request_ready is not None:  # HTTP/1 (the only protocol configured)
            loop = self.worker.loop
            self._header_deadline = loop.call_later(HEADER_TIMEOUT, self._headers_too_slow)

    def _on_headers_complete(self) -> Any:
        """The headers are in: the deadline no longer applies to this connection."""
        self._cancel_header_deadline()
        return super()._on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drops the deadline with the connection."""
        self._cancel_header_deadline()
        _OPEN_CONNECTIONS.discard(self)
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self._current_request is None and not self._closed:
            # gunicorn's own keep-alive expiry: closes and wakes the connection's task.
            self._keepalive_timeout()

    def close_if_idle(self) -> None:
        """Closes the connection when no request is under way on it (shutdown)."""
        if self._awaiting_request and not self._closed:
            self._keepalive_timeout()

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None


class Worker(gasgi.ASGIWorker):
    """gunicorn's asyncio worker with HeaderDeadlineProtocol (`worker_class` in
    bot/gunicorn_conf.py)."""

    def init_process(self) -> None:
        """The worker builds its protocol by the module-level name, so point that name at
        the subclass; this runs in the forked worker only, which serves nothing else."""
        gasgi.ASGIProtocol = HeaderDeadlineProtocol
        super().init_process()

    def handle_exit_signal(self) -> None:
        """SIGTERM: gunicorn waits up to graceful_timeout for every open connection, also for
        those that never sent a request; close those after a short linger (a request that
        arrives meanwhile is still served), so a deploy is not held up by idle clients."""
        super().handle_exit_signal()
        self.loop.call_later(SHUTDOWN_LINGER, _close_idle_connections)


def _close_idle_connections() -> None:
    for connection in list(_OPEN_CONNECTIONS):
        connection.close_if_idle()


def buffered_wsgi(wsgi_app: WsgiApp, *, threads: int) -> AsgiApp:
    """An ASGI app that reads each body completely (413 over MAX_BODY_BYTES, 408 after
    BODY_TIMEOUT) before `wsgi_app` runs on one of `threads` threads."""
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="http")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # asgi_lifespan is off; no websockets
        declared = _content_length(scope)
        if declared is not None and declared > MAX_BODY_BYTES:
            await _refuse(send, scope, 413, f"declared {declared} bytes")
            return
        try:
            body = await asyncio.wait_for(_read_body(receive), BODY_TIMEOUT)
        except _TooLarge:
            await _refuse(send, scope, 413, f"over {MAX_BODY_BYTES} bytes while streaming")
            return
        except TimeoutError:
            await _refuse(send, scope, 408, f"body not complete after {BODY_TIMEOUT:g} s")
            return
        if body is None:
            return  # the client went away
        environ: dict[str, Any] = dict(
            build_environ(cast(Any, _with_length(scope, len(body))), cast(Any, io.BytesIO(body)))
        )
        environ["wsgi.errors"] = sys.stderr  # a2wsgi says stdout, which carries the audit lines
        loop = asyncio.get_running_loop()
        status, headers, chunks = await loop.run_in_executor(executor, _call, wsgi_app, environ)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"".join(chunks)})

    return app


def _call(
    wsgi_app: WsgiApp, environ: dict[str, Any]
) -> tuple[int, list[tuple[bytes, bytes]], list[bytes]]:
    """Runs the WSGI app to the end on this thread: status, headers and body chunks."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    chunks: list[bytes] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [(status, headers)]
        return chunks.append

    result: Iterable[bytes] = wsgi_app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started[0]
    encoded = [
        (n.strip().lower().encode("latin-1"), v.strip().encode("latin-1")) for n, v in headers
    ]
    return int(status.split(" ", 1)[0]), encoded, chunks


class _TooLarge(Exception):
    pass


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body, or None when the client disconnected; raises _TooLarge past the cap."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # gunicorn's parser refuses these before we see them
    return None


def _with_length(scope: Scope, length: int) -> Scope:
    """The scope with the buffered body's real length, also for chunked requests (Bolt's
    WSGI adapter reads exactly CONTENT_LENGTH bytes)."""
    framing = {b"content-length", b"transfer-encoding"}
    headers = [(n, v) for n, v in scope.get("headers", ()) if n.lower() not in framing]
    headers.append((b"content-length", str(length).encode()))
    return {**scope, "headers": headers}


async def _refuse(send: Send, scope: Scope, status: int, why: str) -> None:
    """Answers without reading the rest of the body; gunicorn then closes the connection."""
    log.warning("refused %s %s with %d: %s", scope.get("method"), scope.get("path"), status, why)
    text = b"Request Entity Too Large\n" if status == 413 else b"Request Timeout\n"
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text})
