"""A local stand-in for the ngrok API's tunnel-session, endpoint and tunnel resources.

Real HTTP/1.1 with keep-alive on 127.0.0.1, so clients are tested through their real
transport. It follows shared/reference/ngrok-api.md (§10 behaviour, §7 error shapes) and the
official OpenAPI spec, with knobs for the failures a client must survive: rate and
concurrency limits, latency, injected faults, TLS with a private CA. The transport lives in
ngrok_http.py, the limits and faults in ngrok_failures.py, the resources in ngrok_fleet.py.

    python -m tests.servers.ngrok_api --port 0 --sessions 500   # prints the base URL first
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hmac
import json
import math
import os
import random
import signal
import ssl
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.servers.ngrok_failures import FaultQueue, RequestLimits, answer_with_fault
from tests.servers.ngrok_fleet import COLLECTIONS, ApiError, Fleet, encode_ksuid, parse_query
from tests.servers.ngrok_http import NgrokHttpServer, Reply

ACTIONS = ("restart", "stop", "update")
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
        self._limits = RequestLimits(rate_limit, rate_window, max_concurrent)
        self.restart_delay = restart_delay
        self._tls, self.send_retry_after, self.legacy_plan = tls, send_retry_after, legacy_plan
        self._address = (host, port)
        self.next_page_keeps_filter = next_page_keeps_filter
        self._endpoint_type = endpoint_type
        self._anchor_time = anchor_time
        self._lock = threading.RLock()
        self._log: list[LoggedRequest] = []
        self._faults = FaultQueue()
        self._op_rng = random.Random()
        self._fleet: Fleet | None = None
        self._httpd: NgrokHttpServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        self.ca_bundle_path: str | None = None

    def __repr__(self) -> str:  # never shows the API key
        return f"NgrokApiServer(base_url={self.base_url!r})"

    # ---- life cycle ---------------------------------------------------------------------
    def start(self) -> NgrokApiServer:
        context = self._make_tls_context() if self._tls else None
        self._httpd = NgrokHttpServer(self._address, self._respond, context)
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
        """Makes the next `times` matching requests fail as `kind` (see ngrok_failures)."""
        self._faults.add(kind, method=method, path_contains=path_contains, times=times, delay=delay)

    # ---- request processing -----------------------------------------------------------------
    def _respond(
        self, method: str, target: str, headers: dict[str, str], body: bytes, at: float
    ) -> Reply | None:
        """Answers one request for the transport and logs it before the reply goes out, so a
        client holding its answer finds it in the log; None means drop the connection."""
        url = urlsplit(target)
        try:
            reply = self._process(method, url.path, url.query, headers, body)
        except Exception as error:  # a stand-in bug: answer 500 rather than hang up silently
            reply = self._error(ApiError(500, None, f"stand-in failure: {type(error).__name__}"))
        query: dict[str, list[str]] = {}
        for key, value in parse_qsl(url.query, keep_blank_values=True):
            query.setdefault(key, []).append(value)
        status = 0 if reply is None else reply.status
        self._record(LoggedRequest(method, url.path, query, headers, body, status, at))
        return reply

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
                return self._error(self._limits.concurrency_error())
            is_action = method == "POST" and path.endswith(ACTIONS)
            fault = self._faults.take(method, path, is_action=is_action)
            return answer_with_fault(
                fault,
                lambda: self._handle(method, path, query, headers, body),
                self._error,
                self._rate_limited,
            )
        finally:
            if admitted:
                self._limits.leave()

    def _rate_limited(self, wait: float) -> Reply:
        reply = self._error(self._limits.rate_error())
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
