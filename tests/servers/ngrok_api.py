"""A local stand-in for the ngrok API's tunnel-session, endpoint and tunnel resources.

Real HTTP/1.1 with keep-alive on 127.0.0.1, so clients are tested through their real
transport. It follows shared/reference/ngrok-api.md (§10 behaviour, §7 error shapes) and the
official OpenAPI spec, with knobs for the failures a client must survive: rate and
concurrency limits, latency, injected faults, TLS with a private CA.

    python -m tests.servers.ngrok_api --port 0 --sessions 500   # prints the base URL first
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hmac
import http
import json
import math
import os
import random
import signal
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.servers.ngrok_fleet import COLLECTIONS, ApiError, Fleet, encode_ksuid, parse_query

JSON_TYPE = "application/json; charset=utf-8"
SERVER_ERRORS = ("500", "502", "503")
FAULT_KINDS = (*SERVER_ERRORS, "html_502", "timeout", "reset", "malformed_json", "429", "err_810")
ACTIONS = ("restart", "stop", "update")
HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
MSG_218 = (
    "Your request has not specified an API version. Please include the version you wish to "
    "use in the Ngrok-Version header. Supported versions: 2."
)


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the server saw it; `status` 0 means the connection was dropped."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int
    at: float


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    kind: str
    method: str | None
    path_contains: str | None
    remaining: int
    delay: float

    def matches(self, method: str, path: str) -> bool:
        if self.kind == "err_810" and not (method == "POST" and path.endswith(ACTIONS)):
            return False
        return (self.method is None or self.method.upper() == method) and (
            self.path_contains is None or self.path_contains in path
        )


class _Limits:
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


class _HttpServer(ThreadingHTTPServer):
    """Adds TLS (handshake deferred to the handler thread), connection tracking so stop()
    can close keep-alive connections, and abortive closes for the "reset" fault."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], app: NgrokApiServer, tls: ssl.SSLContext | None
    ) -> None:
        self.app, self.tls = app, tls
        self.open: set[socket.socket] = set()
        self.dropped: set[int] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self.conn_lock:
            self.open.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        with self.conn_lock:
            self.open.discard(request)
            dropped = id(request) in self.dropped
            self.dropped.discard(id(request))
        if dropped:
            self.close_request(request)  # SO_LINGER 0 is set: the close sends a RST
        else:
            super().shutdown_request(request)

    def close_open_connections(self) -> None:
        with self.conn_lock:
            for sock in list(self.open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up (or failing a TLS handshake) is normal here, not a traceback."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # see reference §10: Nagle + delayed ACK stall keep-alive
    timeout = 120
    server: _HttpServer

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request log is the record."""

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():
                pass
            return b"".join(chunks)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            return b""
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        at = time.monotonic()
        body = self._read_body()
        url = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        app = self.server.app
        try:
            reply = app._process(self.command, url.path, url.query, headers, body)
        except Exception as error:  # a stand-in bug: answer 500 rather than hang up silently
            reply = app._error(ApiError(500, None, f"stand-in failure: {type(error).__name__}"))
        query: dict[str, list[str]] = {}
        for key, value in parse_qsl(url.query, keep_blank_values=True):
            query.setdefault(key, []).append(value)
        status = 0 if reply is None else reply.status
        # logged before answering, so a client holding its answer finds it in the log
        app._record(LoggedRequest(self.command, url.path, query, headers, body, status, at))
        if reply is None:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with self.server.conn_lock:
                self.server.dropped.add(id(self.request))
            self.close_connection = True
        else:
            self._write(reply)

    def _write(self, reply: Reply) -> None:
        lines = [
            f"HTTP/1.1 {reply.status} {http.HTTPStatus(reply.status).phrase}",
            f"Date: {self.date_time_string()}",
        ]
        if reply.status != 204:
            lines += [f"Content-Type: {reply.content_type}", f"Content-Length: {len(reply.body)}"]
        lines += [f"{k}: {v}" for k, v in reply.headers.items()]
        if self.close_connection:
            lines.append("Connection: close")
        payload = b"" if self.command == "HEAD" or reply.status == 204 else reply.body
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class NgrokApiServer:
    """The stand-in. Thread-safe; `latency` may be changed while it runs."""

    def __init__(
        self,
        *,
        api_key: str = "ngrok-test-api-key-0123456789",
        sessions: int = 50,
        seed: int = 7,
        latency: float = 0.0,
        rate_limit: int | None = 120,
        rate_window: float = 60.0,
        max_concurrent: int | None = None,
        restart_delay: float = 0.2,
        tls: bool = False,
        send_retry_after: bool = False,
        legacy_plan: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        next_page_keeps_filter: bool = False,
        endpoint_type: str = "ephemeral",
        anchor_time: float | None = None,
    ) -> None:
        self._api_key = api_key
        self._initial_sessions, self._seed = sessions, seed
        self.latency = latency
        self._limits = _Limits(rate_limit, rate_window, max_concurrent)
        self.restart_delay = restart_delay
        self._tls, self.send_retry_after, self.legacy_plan = tls, send_retry_after, legacy_plan
        self._address = (host, port)
        self.next_page_keeps_filter = next_page_keeps_filter
        self._endpoint_type = endpoint_type
        self._anchor_time = anchor_time
        self._lock = threading.RLock()
        self._log: list[LoggedRequest] = []
        self._faults: list[_Fault] = []
        self._op_rng = random.Random()
        self._fleet: Fleet | None = None
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        self.ca_bundle_path: str | None = None

    def __repr__(self) -> str:  # never shows the API key
        return f"NgrokApiServer(base_url={self.base_url!r})"

    # ---- life cycle ---------------------------------------------------------------------
    def start(self) -> NgrokApiServer:
        context = self._make_tls_context() if self._tls else None
        self._httpd = _HttpServer(self._address, self, context)
        host, port = self._httpd.server_address[:2]
        self.base_url = f"{'https' if context else 'http'}://{host}:{port}"
        self._fleet = Fleet(self.base_url, random.Random(self._seed), self._endpoint_type)
        self._fleet.generate(self._initial_sessions, self._anchor_time or time.time())
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def _make_tls_context(self) -> ssl.SSLContext:
        import trustme  # only needed with tls=True

        ca = trustme.CA()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
        fd, path = tempfile.mkstemp(prefix="ngrok-stand-in-ca-", suffix=".pem")
        os.close(fd)
        ca.cert_pem.write_to_path(path)
        self.ca_bundle_path = path
        return context

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.close_open_connections()
            self._httpd = None
        if self.ca_bundle_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.ca_bundle_path)
            self.ca_bundle_path = None

    def __enter__(self) -> NgrokApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- inspection and control -----------------------------------------------------------
    def client_headers(self) -> dict[str, str]:
        """The headers a well-behaved client sends (test convenience; the key is a test key)."""
        return {"Authorization": f"Bearer {self._api_key}", "Ngrok-Version": "2"}

    def log(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def requests_matching(
        self, method: str | None = None, path_prefix: str | None = None
    ) -> list[LoggedRequest]:
        return [
            r
            for r in self.log()
            if (method is None or r.method == method.upper())
            and (path_prefix is None or r.path.startswith(path_prefix))
        ]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def _record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def _world(self) -> Fleet:
        """The fleet with due reconnects applied; call with the lock held."""
        if self._fleet is None:
            raise RuntimeError("the server is not started")
        self._fleet.reconnect_due(time.time())
        return self._fleet

    def session_ids(self) -> list[str]:
        with self._lock:
            return [s["id"] for s in self._world().sessions.newest_first()]

    def session(self, session_id: str) -> dict | None:
        with self._lock:
            agent = self._world().agents.get(session_id)
            return copy.deepcopy(agent.session) if agent else None

    def add_session(self, *, endpoint_count: int | None = None, **fields: Any) -> dict:
        """A new newest session; `fields` override generated ones (None removes a field)."""
        with self._lock:
            return copy.deepcopy(self._world().add_session(time.time(), fields, endpoint_count))

    def set_remote_management(self, session_id: str, enabled: bool) -> None:
        with self._lock:
            agent = self._world().agents.get(session_id)
            if agent is None:
                raise KeyError(f"no online session {session_id}")
            agent.remote_management = enabled

    def inject_fault(
        self,
        kind: str,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        times: int = 1,
        delay: float = 5.0,
    ) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        with self._lock:
            self._faults.append(_Fault(kind, method, path_contains, times, delay))

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.matches(method, path):
                    fault.remaining -= 1
                    return fault
        return None

    # ---- request processing -----------------------------------------------------------------
    def _process(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Reply | None:
        """Limits, latency and faults around `_handle`; None means drop the connection."""
        wait = self._limits.over_rate(headers.get("authorization", ""), time.monotonic())
        admitted = wait is None and self._limits.enter()
        try:
            if self.latency > 0:
                time.sleep(self.latency)
            if wait is not None:
                return self._rate_limited(wait)
            if not admitted:
                limit = self._limits.max_concurrent
                msg = f"You are limited to {limit} simultaneous API requests. Please retry later."
                return self._error(ApiError(429, "ERR_NGROK_225", msg))
            fault = self._take_fault(method, path)
            kind = fault.kind if fault else ""
            if kind == "reset":
                return None
            if kind in SERVER_ERRORS:
                status = int(kind)
                return self._error(ApiError(status, None, http.HTTPStatus(status).phrase))
            if kind == "html_502":
                return Reply(502, HTML_502, "text/html; charset=utf-8")
            if kind == "429":
                return self._rate_limited(1.0)
            if kind == "timeout" and fault:
                time.sleep(fault.delay)
            reply = self._handle(method, path, query, headers, body)
            if kind == "malformed_json":
                full = reply.body or b'{"tunnel_sessions":[{"id":"ts_'
                return Reply(200, full[: max(1, len(full) // 2)], headers=reply.headers)
            if kind == "err_810" and reply.status == 204:
                msg = (
                    "A network error occurred while delivering the operation to the agent or "
                    "reading its response. The agent may be shutting down or reconnecting."
                )
                return self._error(ApiError(502, "ERR_NGROK_810", msg))
            return reply
        finally:
            if admitted:
                self._limits.leave()

    def _rate_limited(self, wait: float) -> Reply:
        limit, window = self._limits.rate_limit or 120, self._limits.window
        msg = (
            f"You have exceeded your API rate limit. You are limited to {limit} API requests "
            f"per {window:g}s. Please wait and retry your request."
        )
        reply = self._error(ApiError(429, "ERR_NGROK_226", msg))
        if self.send_retry_after:
            reply.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return reply

    def _error(self, error: ApiError) -> Reply:
        op_id = "op_" + encode_ksuid(self._op_rng.getrandbits(160))
        body: dict[str, Any] = {"details": {"operation_id": op_id, **error.details}}
        body.update(msg=error.msg, status_code=error.status)
        if error.code is not None:
            body = {"error_code": error.code, "status_code": error.status, "msg": error.msg, **body}
        return Reply(error.status, _dumps(body), headers={"ngrok-operation-id": op_id})

    def _ok(self, status: int, obj: Any = None) -> Reply:
        op_id = "op_" + encode_ksuid(self._op_rng.getrandbits(160))
        body = b"" if obj is None else _dumps(obj)
        return Reply(status, body, headers={"ngrok-operation-id": op_id})

    def _handle(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Reply:
        try:
            self._check_credentials(headers)
            parts = path.split("/")[1:]
            if not parts or "" in parts or parts[0] not in COLLECTIONS or len(parts) > 3:
                raise ApiError(404, None, "Not Found", {"path": path})
            action = parts[2] if len(parts) == 3 else None
            want = "POST" if action else "GET"
            if method != want or (
                action and (parts[0] != "tunnel_sessions" or action not in ACTIONS)
            ):
                raise ApiError(404, None, "Not Found", {"path": path})
            prefix, fields, arrays = COLLECTIONS[parts[0]]
            allowed = ("before_id", "limit", *(("filter",) if fields else ()), *arrays)
            params = parse_query(query, allowed if len(parts) == 1 else (), arrays)
            if method == "GET" and body:
                raise ApiError(400, "ERR_NGROK_211", "This request method does not accept a body.")
            if len(parts) == 1:
                with self._lock:  # serialized under the lock: the objects are live
                    keeps = self.next_page_keeps_filter
                    return self._ok(200, self._world().list_page(parts[0], params, keeps))
            obj_id = parts[1]
            if not obj_id.startswith(prefix):
                msg = f"The resource ID '{obj_id}' is invalid: expected an ID starting '{prefix}'."
                raise ApiError(400, "ERR_NGROK_227", msg)
            if action is None:
                with self._lock:
                    return self._ok(200, self._world().get_object(parts[0], obj_id))
            _check_json_body(headers, body)
            return self._act(obj_id, action)
        except ApiError as error:
            return self._error(error)

    def _check_credentials(self, headers: Mapping[str, str]) -> None:
        auth = headers.get("authorization")
        if not auth:
            msg = "Your request did not include an Authorization header with an API key."
            raise ApiError(401, "ERR_NGROK_200", msg)
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401, "ERR_NGROK_201", "The Authorization header must use the Bearer scheme."
            )
        token = token.strip()
        if not hmac.compare_digest(token.encode(), self._api_key.encode()):
            msg = f"The authentication you specified is invalid. Your credential: {token}"
            raise ApiError(401, "ERR_NGROK_203", msg)
        version = headers.get("ngrok-version")
        if version is None:
            raise ApiError(400, "ERR_NGROK_218", MSG_218)
        if version.strip() != "2":
            msg = (
                f"Your request specified an invalid API version '{version}'. Supported versions: 2."
            )
            raise ApiError(400, "ERR_NGROK_217", msg)

    def _act(self, session_id: str, action: str) -> Reply:
        if self.legacy_plan:
            code, what = (
                ("ERR_NGROK_1702", "update")
                if action == "update"
                else ("ERR_NGROK_1701", "stop or restart")
            )
            msg = f"Your account is on a legacy plan, which cannot {what} tunnel sessions."
            raise ApiError(403, code, msg)
        with self._lock:
            self._world().apply_action(session_id, action, time.time(), self.restart_delay)
        return self._ok(204)


def _check_json_body(headers: Mapping[str, str], body: bytes) -> None:
    content_type = headers.get("content-type", "").strip()
    if not content_type:
        msg = "You did not provide a Content-Type header. Supported types: application/json."
        raise ApiError(400, "ERR_NGROK_216", msg)
    if content_type.split(";")[0].strip().lower() != "application/json":
        msg = f"The Content-Type '{content_type}' is not supported. Use application/json."
        raise ApiError(415, "ERR_NGROK_210", msg)
    try:
        parsed = json.loads(body.decode("utf-8")) if body.strip() else None
    except (UnicodeDecodeError, ValueError):
        parsed = None
    if not isinstance(parsed, dict):
        raise ApiError(400, "ERR_NGROK_213", "The request body must be a JSON object, e.g. {}.")


def main(argv: list[str] | None = None) -> None:
    """Serves until killed (SIGTERM or SIGINT); prints the base URL as the first line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--api-key", default="ngrok-test-api-key-0123456789")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate-limit", type=int, default=120, help="0 turns the limit off")
    parser.add_argument("--max-concurrent", type=int, default=0, help="0 means no cap")
    args = parser.parse_args(argv)
    server = NgrokApiServer(
        api_key=args.api_key,
        sessions=args.sessions,
        seed=args.seed,
        latency=args.latency,
        tls=args.tls,
        port=args.port,
        rate_limit=args.rate_limit or None,
        max_concurrent=args.max_concurrent or None,
    ).start()
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    print(server.base_url, flush=True)
    if server.ca_bundle_path:
        print(f"ca_bundle={server.ca_bundle_path}", flush=True)
    while not stopped.wait(0.5):
        pass
    server.stop()


if __name__ == "__main__":
    main()
