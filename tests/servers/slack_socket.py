"""The Socket Mode half of the local Slack stand-in: a real WebSocket server on loopback.

Slack hands out a ``wss://`` URL from ``apps.connections.open``; the app connects, gets a
``hello``, then receives envelopes and must answer each with an ack carrying its
``envelope_id`` (https://docs.slack.dev/apis/events-api/using-socket-mode/). slack_sdk's
builtin client speaks raw RFC 6455 over a plain TCP socket when the port is not 443, so a
``ws://`` URL on 127.0.0.1 reaches this server unchanged. We use the ``websockets`` sync
server because it answers pings and handles framing; compression stays off because the
builtin client never negotiates it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

ENVELOPE_TYPES = ("slash_commands", "interactive", "events_api")
# The builtin client's close() leaves its reader blocked in recv() for up to 3 s; a frequent
# server ping wakes it, so tests that close a SocketModeHandler don't each pay 3 s.
KEEPALIVE_SECONDS = 0.5


class SocketModeServer:
    """Accepts Socket Mode connections that present a ticket issued by ``issue_url``."""

    def __init__(self, *, app_id: str, host: str = "127.0.0.1") -> None:
        self._app_id = app_id
        self._host = host
        self._cond = threading.Condition()
        self._tickets: set[str] = set()
        self._connections: list[ServerConnection] = []
        self._acks: dict[str, dict] = {}
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the Socket Mode server is not started")
        return self._server.socket.getsockname()[1]

    def start(self) -> None:
        self._server = serve(
            self._handle_connection,
            self._host,
            0,
            compression=None,
            process_request=self._check_ticket,
            close_timeout=2,
            ping_interval=KEEPALIVE_SECONDS,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="slack-socket-mode", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Close every connection (code 1001, as Slack does on a deploy) and the listener."""
        if self._server is None:
            return
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def issue_url(self) -> str:
        """A fresh connection URL, the answer to ``apps.connections.open``."""
        ticket = uuid.uuid4().hex
        with self._cond:
            self._tickets.add(ticket)
        return f"ws://{self._host}:{self.port}/link/?ticket={ticket}"

    def connection_count(self) -> int:
        with self._cond:
            return len(self._connections)

    def wait_connected(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._connections:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no Socket Mode connection within {timeout}s")
                self._cond.wait(remaining)

    def send_envelope(
        self, type: str, payload: dict, *, accepts_response_payload: bool, timeout: float
    ) -> dict:
        """Push one envelope to the newest connection and return the app's ack for it."""
        if type not in ENVELOPE_TYPES:
            raise ValueError(f"unknown envelope type {type!r}; expected one of {ENVELOPE_TYPES}")
        envelope_id = str(uuid.uuid4())
        envelope: dict = {
            "envelope_id": envelope_id,
            "type": type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        if type == "events_api":
            envelope.update({"retry_attempt": 0, "retry_reason": ""})
        self.wait_connected(timeout)
        deadline = time.monotonic() + timeout
        with self._cond:
            connection = self._connections[-1]
        connection.send(json.dumps(envelope))
        with self._cond:
            while envelope_id not in self._acks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no ack for {type} envelope {envelope_id} within {timeout}s "
                        f"(open connections: {len(self._connections)}, "
                        f"acks received: {len(self._acks)})"
                    )
                self._cond.wait(remaining)
            return self._acks.pop(envelope_id)

    def _check_ticket(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse the upgrade unless the URL carries a ticket we issued, like Slack's 401."""
        parts = urlsplit(request.path)
        ticket = parse_qs(parts.query).get("ticket", [""])[0]
        with self._cond:
            known = ticket in self._tickets
        if parts.path.rstrip("/") != "/link" or not known:
            return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid ticket\n")
        return None

    def _handle_connection(self, connection: ServerConnection) -> None:
        with self._cond:
            count = len(self._connections) + 1
        connection.send(json.dumps(self._hello(count)))
        with self._cond:
            self._connections.append(connection)
            self._cond.notify_all()
        try:
            for message in connection:
                self._record_ack(message)
        except ConnectionClosed:
            pass  # the builtin client drops the TCP socket without a close frame
        finally:
            with self._cond:
                self._connections.remove(connection)
                self._cond.notify_all()

    def _hello(self, num_connections: int) -> dict:
        return {
            "type": "hello",
            "num_connections": num_connections,
            "debug_info": {
                "host": "applink-local",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self._app_id},
        }

    def _record_ack(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            return
        try:
            data = json.loads(message)
        except json.JSONDecodeError:
            return
        if isinstance(data, dict) and isinstance(data.get("envelope_id"), str):
            with self._cond:
                self._acks[data["envelope_id"]] = data
                self._cond.notify_all()
