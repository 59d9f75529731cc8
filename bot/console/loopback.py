"""Slack, served by the console itself: what the app sends is captured for it to print.

Bolt builds a fresh `WebClient` for every request from the app's base URL, and `respond()`
POSTs to the payload's `response_url`, so both must be URLs. `LoopbackSlack` is one tiny HTTP
server on 127.0.0.1 that answers both (SLACK_API_URL points at it); every code path that
calls Slack runs unchanged, and nothing leaves the machine.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

BOT_USER = "U0NGROKOPS"
Kind = Literal["private", "public", "edit", "replace", "ack"]


@dataclass(frozen=True)
class Delivery:
    """One message the app sent, and where it would appear in Slack."""

    kind: Kind
    message: dict[str, Any]
    channel: str = ""
    ts: str = ""
    thread_ts: str | None = None
    to_user: str = ""


@dataclass
class Outbox:
    """Deliveries in the order they were sent; worker threads add, the console takes."""

    items: queue.SimpleQueue[Delivery] = field(default_factory=queue.SimpleQueue)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(100))

    def add(self, delivery: Delivery) -> None:
        self.items.put(delivery)

    def take_all(self) -> list[Delivery]:
        taken = []
        while not self.items.empty():
            taken.append(self.items.get_nowait())
        return taken

    def new_ts(self) -> str:
        """A message timestamp that sorts like Slack's."""
        return f"1800000000.{next(self._ts):06d}"


def _message_fields(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in args.items() if k in ("text", "blocks", "attachments")}


def answer_web_api(outbox: Outbox, method: str, args: dict[str, Any]) -> dict[str, Any]:
    """What Slack would answer to one Web API call, recording messages in the outbox."""
    body: dict[str, Any] = {"ok": True}
    channel = str(args.get("channel", ""))
    if method == "chat.postMessage":
        ts = outbox.new_ts()
        outbox.add(Delivery("public", _message_fields(args), channel, ts, args.get("thread_ts")))
        body.update(channel=channel, ts=ts)
    elif method == "chat.postEphemeral":
        ts = outbox.new_ts()
        delivery = Delivery(
            "private", _message_fields(args), channel, ts, args.get("thread_ts"),
            to_user=str(args.get("user", "")),
        )  # fmt: skip
        outbox.add(delivery)
        body.update(message_ts=ts)
    elif method == "chat.update":
        ts = str(args.get("ts", ""))
        outbox.add(Delivery("edit", _message_fields(args), channel, ts))
        body.update(channel=channel, ts=ts)
    elif method == "chat.getPermalink":
        ts = str(args.get("message_ts", ""))
        body.update(permalink=f"https://console.invalid/{channel}/{ts}", channel=channel)
    elif method == "auth.test":
        body.update(user_id=BOT_USER, team_id="T0CONSOLE", bot_id="B0CONSOLE", user="ngrok-ops")
    elif method == "usergroups.users.list":
        body.update(users=[])
    return body


def _arguments(query: str, content_type: str, raw: bytes) -> dict[str, Any]:
    """A Web API call's arguments from its query string and form or JSON body."""
    args: dict[str, Any] = dict(urllib.parse.parse_qsl(query))
    if "json" in content_type:
        parsed = json.loads(raw.decode("utf-8") or "{}")
        args.update(parsed if isinstance(parsed, dict) else {})
    else:
        args.update(urllib.parse.parse_qsl(raw.decode("utf-8")))
    for key in ("blocks", "attachments"):
        if isinstance(args.get(key), str):  # form-encoded calls carry them as JSON text
            args[key] = json.loads(args[key])
    return args


class LoopbackSlack:
    """Slack's Web API (`api_url`) and every `response_url` the console hands out, served
    on 127.0.0.1 by one small HTTP server that nothing outside this machine can reach."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._numbers = itertools.count(1)
        self._origins: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.api_url = f"{self.base_url}/api/"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def new_response_url(self, *, channel: str, message_ts: str = "") -> str:
        """A fresh response_url; a reply to it knows which channel and message it answers."""
        key = str(next(self._numbers))
        with self._lock:
            self._origins[key] = {"channel": channel, "ts": message_ts}
        return f"{self.base_url}/respond/{key}"

    def answer(self, path: str, content_type: str, raw: bytes) -> tuple[int, bytes, str]:
        """Status, body and content type for one POST."""
        route, _, query = path.partition("?")
        if route.startswith("/api/"):
            try:
                args = _arguments(query, content_type, raw)
            except (ValueError, UnicodeDecodeError):
                return 200, b'{"ok":false,"error":"invalid_arguments"}', "application/json"
            body = answer_web_api(self.outbox, route[len("/api/") :], args)
            return 200, json.dumps(body).encode(), "application/json"
        if route.startswith("/respond/"):
            return self._respond(route.rsplit("/", 1)[-1], raw), b"ok", "text/plain"
        return 404, b"not found", "text/plain"

    def _respond(self, key: str, raw: bytes) -> int:
        with self._lock:
            origin = self._origins.get(key)
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return 400
        if origin is None or not isinstance(payload, dict):
            return 404
        replace = payload.get("replace_original") and origin["ts"]
        kind: Kind = "replace" if replace else "private"
        if payload.get("response_type") == "in_channel" and not replace:
            kind = "public"
        ts = origin["ts"] if replace else self.outbox.new_ts()
        self.outbox.add(Delivery(kind, _message_fields(payload), origin["channel"], ts))
        return 200

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler_for(slack: LoopbackSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, body, content_type = slack.answer(
                self.path, self.headers.get("Content-Type", ""), raw
            )
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # the console prints the messages themselves

    return Handler
