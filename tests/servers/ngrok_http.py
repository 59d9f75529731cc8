"""The HTTP/1.1 transport under the ngrok API stand-in: sockets, TLS, keep-alive, raw replies.

Kept apart from ngrok_api.py so the API's behaviour there reads without socket details, and so
the transport tricks clients must be tested against live in one place: keep-alive without Nagle
(reference §10), chunked request bodies, abortive closes (RST) for the "reset" fault, and TLS
with the handshake on the handler thread. The transport knows nothing about the API; it hands
each request to a `Respond` callable and writes what comes back.
"""

from __future__ import annotations

import contextlib
import http
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

JSON_TYPE = "application/json; charset=utf-8"


@dataclass
class Reply:
    """What to send back: status, body and extra headers (Content-Length is added here)."""

    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)


# (method, path with query, lower-cased headers, body, monotonic arrival time) -> the reply,
# or None to drop the connection with a reset
Respond = Callable[[str, str, dict[str, str], bytes, float], Reply | None]


class NgrokHttpServer(ThreadingHTTPServer):
    """Adds TLS (handshake deferred to the handler thread), connection tracking so stop()
    can close keep-alive connections, and abortive closes for the "reset" fault."""

    daemon_threads = True
    request_queue_size = 128  # not socketserver's 5: see tests/servers/slack_api.py

    def __init__(
        self, address: tuple[str, int], respond: Respond, tls: ssl.SSLContext | None
    ) -> None:
        self.respond, self.tls = respond, tls
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
    server: NgrokHttpServer

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
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.server.respond(self.command, self.path, headers, body, at)
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
