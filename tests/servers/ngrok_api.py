"""A local stand-in for the ngrok API's tunnel-session, endpoint and tunnel resources.

Real HTTP/1.1 with keep-alive on 127.0.0.1, so clients are tested through their real
transport. It follows shared/reference/ngrok-api.md (§10 behaviour, §7 error shapes) and the
official OpenAPI spec, with knobs for the failures a client must survive: rate and
concurrency limits, latency, injected faults, TLS with a private CA. The transport lives in
ngrok_http.py, the limits and faults in ngrok_failures.py; the resources and the request
handling are the product's simulated account (bot/demo/fleet.py, bot/demo/ngrok_api.py),
which `python -m bot console --demo` serves in process.

    python -m tests.servers.ngrok_api --port 0 --sessions 500   # prints the base URL first
"""

from __future__ import annotations

import argparse
import contextlib
import copy
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

from bot.demo.fleet import ApiError, Fleet
from bot.demo.ngrok_api import ACTIONS, ApiReply, Behaviour, FleetApi
from tests.servers.ngrok_failures import FaultQueue, RequestLimits, answer_with_fault
from tests.servers.ngrok_http import NgrokHttpServer, Reply


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
        self._behaviour = Behaviour(restart_delay, legacy_plan, next_page_keeps_filter)
        self._tls, self.send_retry_after = tls, send_retry_after
        self._address = (host, port)
        self._endpoint_type = endpoint_type
        self._anchor_time = anchor_time
        self._lock = threading.RLock()
        self._log: list[LoggedRequest] = []
        self._faults = FaultQueue()
        self._offline: dict[str, Any] = {}
        self._api: FleetApi | None = None
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
        fleet = Fleet(self.base_url, random.Random(self._seed), self._endpoint_type)
        fleet.generate(self._initial_sessions, self._anchor_time or time.time())
        self._api = FleetApi(fleet, api_key=self._api_key, behaviour=self._behaviour)
        self._lock = self._api.lock  # one lock for the fleet and for the helpers below
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

    # ---- behaviour that tests change on a running server -----------------------------------
    @property
    def restart_delay(self) -> float:
        return self._behaviour.restart_delay

    @restart_delay.setter
    def restart_delay(self, seconds: float) -> None:
        self._behaviour.restart_delay = seconds

    @property
    def legacy_plan(self) -> bool:
        return self._behaviour.legacy_plan

    @legacy_plan.setter
    def legacy_plan(self, value: bool) -> None:
        self._behaviour.legacy_plan = value

    @property
    def next_page_keeps_filter(self) -> bool:
        return self._behaviour.next_page_keeps_filter

    @next_page_keeps_filter.setter
    def next_page_keeps_filter(self, value: bool) -> None:
        self._behaviour.next_page_keeps_filter = value

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
        if self._api is None:
            raise RuntimeError("the server is not started")
        return self._api.world()

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

    def disconnect(self, session_id: str) -> dict:
        """The agent drops off the account (network loss, crash); returns its last session."""
        with self._lock:
            agent = self._world().find(session_id)
            self._world().take_offline(agent)
            self._offline[session_id] = agent
            return copy.deepcopy(agent.session)

    def reconnect(self, session_id: str, *, agent_version: str | None = None) -> dict:
        """A disconnected agent comes back as the agent would: under a new session id, with
        the same credential, IP and metadata (and, optionally, another agent version)."""
        with self._lock:
            agent = self._offline.pop(session_id)
            kept = ("agent_version", "credential", "ip", "metadata", "os", "region", "transport")
            fields: dict[str, Any] = {key: agent.session.get(key) for key in kept}
            if agent_version is not None:
                fields["agent_version"] = agent_version
            return copy.deepcopy(
                self._world().add_session(time.time(), fields, len(agent.endpoint_specs))
            )

    def set_api_key(self, api_key: str) -> None:
        """The account's API key changes (a revoked key: the bot's requests get 401)."""
        assert self._api is not None
        self._api._api_key = api_key

    def set_remote_management(self, session_id: str, enabled: bool) -> None:
        with self._lock:
            agent = self._world().agents.get(session_id)
            if agent is None:
                raise KeyError(f"no online session {session_id}")
            agent.remote_management = enabled

    def in_flight(self) -> int:
        """Requests received and not answered yet (a held POST counts)."""
        return self._limits.in_flight

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

    def clear_faults(self) -> None:
        """Forgets every injected fault, used up or not: the API answers normally again."""
        self._faults.clear()

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
        assert self._api is not None
        return _reply(self._api.error(error))

    def _handle(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Reply:
        assert self._api is not None
        return _reply(self._api.handle(method, path, query, headers, body))


def _reply(answer: ApiReply) -> Reply:
    """The product handler's answer as the transport's Reply (whose headers may grow)."""
    return Reply(answer.status, answer.body, headers=dict(answer.headers))


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
