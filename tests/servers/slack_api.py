"""A local stand-in for the Slack Web API, response_url endpoints and Socket Mode.

End-to-end tests run the bot as a real process with ``SLACK_API_URL`` pointed here and then
assert on what it posted. The server parses requests the way slack_sdk 3.48 sends them:
``chat.*`` methods as JSON, most others form-encoded (blocks then arrive as JSON strings),
the token in ``Authorization: Bearer``. It answers like Slack where it matters to the bot:
``ok: false`` with HTTP 200 for API errors, 429 + ``Retry-After`` when rate limited, Block
Kit checked with slack_sdk's own models (slack_checks.py), and response URLs good for five uses.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

from tests.servers.slack_checks import message_problem, parse_body, view_problem
from tests.servers.slack_socket import SocketModeServer

RESPONSE_URL_USES = 5  # "up to 5 times within 30 minutes" (Slack slash-command docs)
TEAM_DOMAIN = "ngrok-ops-test"


@dataclass(frozen=True)
class SlackCall:
    """One request the server received, with what it answered (``status``, ``response``)."""

    method: str
    body: dict
    headers: dict[str, str] = field(repr=False)
    key: str | None
    at: float
    status: int = 200
    response: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        return self.response.get("error")


@dataclass(frozen=True)
class _Failure:
    status: int
    error: str
    retry_after: int | None


@dataclass(frozen=True)
class _Reply:
    status: int
    text: str
    content_type: str
    retry_after: int | None = None


def _redacted(body: dict) -> dict:
    return {k: ("<redacted>" if k == "token" else v) for k, v in body.items()}


class SlackApiServer:
    """Threaded HTTP/1.1 server on 127.0.0.1 recording every call; see module docstring."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test-token",
        app_token: str = "xapp-test-token",
        team_id: str = "T111",
        bot_user_id: str = "UBOT1",
        bot_id: str = "B111",
        app_id: str = "A111",
        usergroups: dict[str, list[str]] | None = None,
        port: int = 0,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self._port = port
        self._cond = threading.Condition()
        self._calls: list[SlackCall] = []
        self._failures: dict[str, deque[_Failure]] = {}
        self._messages: dict[tuple[str, str], dict] = {}
        self._response_uses: dict[str, int] = {}
        self._usergroups = {k: list(v) for k, v in (usergroups or {}).items()}
        self._ts_counter = itertools.count(1)
        self._http: _HttpServer | None = None
        self._http_thread: threading.Thread | None = None
        self._socket_mode = SocketModeServer(app_id=app_id)
        self._methods: dict[str, Callable[[dict], dict]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.update": self._update,
            "chat.getPermalink": self._get_permalink,
            "conversations.info": self._conversations_info,
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroup_users,
            "apps.connections.open": self._connections_open,
            "chat.delete": self._delete,
            "conversations.open": self._conversations_open,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
            "views.open": self._views_open,
            "views.publish": self._views_publish,
        }
        self._uploads: dict[str, dict[str, Any]] = {}
        self._channels: dict[str, dict[str, Any]] = {}
        self._home_views: dict[str, dict] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        self._http = _HttpServer(("127.0.0.1", self._port), _Handler, self)
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, args=(0.05,), name="slack-api", daemon=True
        )
        self._http_thread.start()
        self._socket_mode.start()
        return self

    def stop(self) -> None:
        """Close Socket Mode first so a connected client cannot reconnect to a live API."""
        self._socket_mode.stop()
        if self._http is not None:
            self._http.shutdown()
            self._http.close_all()
            if self._http_thread is not None:
                self._http_thread.join(timeout=5)
            self._http = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._http is None:
            raise RuntimeError("the Slack API stand-in is not started")
        return self._http.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, key: str | None = None) -> str:
        return f"http://127.0.0.1:{self.port}/response/{key or uuid.uuid4().hex}"

    # -- inspection and control --------------------------------------------------------------

    def calls(self) -> list[SlackCall]:
        with self._cond:
            return list(self._calls)

    def calls_to(self, method: str, key: str | None = None) -> list[SlackCall]:
        return [c for c in self.calls() if c.method == method and (key is None or c.key == key)]

    def wait_for(
        self,
        method: str,
        count: int = 1,
        *,
        timeout: float = 10.0,
        key: str | None = None,
        predicate: Callable[[SlackCall], bool] | None = None,
    ) -> list[SlackCall]:
        """All matching calls once there are at least ``count`` (failed attempts included)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matched = [
                    c
                    for c in self._calls
                    if c.method == method
                    and (key is None or c.key == key)
                    and (predicate is None or predicate(c))
                ]
                if len(matched) >= count:
                    return matched
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"waited {timeout}s for {count} call(s) to {method}"
                        f"{f' (key {key})' if key else ''}, matched {len(matched)}.\n"
                        f"{self._dump()}"
                    )
                self._cond.wait(remaining)

    def _dump(self) -> str:
        if not self._calls:
            return "no calls were received"
        lines = ["calls received:"]
        for index, call in enumerate(self._calls):
            body = json.dumps(_redacted(call.body), default=str)
            lines.append(
                f"  {index}. {call.method}{f' [{call.key}]' if call.key else ''} "
                f"-> {call.status} {call.error or 'ok'}: {body[:400]}"
            )
        return "\n".join(lines)

    def clear(self) -> None:
        """Forget recorded calls; posted messages and response_url budgets are kept."""
        with self._cond:
            self._calls.clear()

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        error: str = "ratelimited",
        retry_after: int | None = 1,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls to ``method`` (or "response_url") with an error."""
        with self._cond:
            queue = self._failures.setdefault(method, deque())
            queue.extend(_Failure(status, error, retry_after) for _ in range(times))

    def set_channel(self, channel: str, *, exists: bool = True, **facts: Any) -> None:
        """What conversations.info says about a channel (is_member, is_archived, name…);
        `exists=False` makes it answer channel_not_found, as for a private channel the bot
        is not in."""
        with self._cond:
            self._channels[channel] = {"_exists": exists, **facts}

    def uploaded_files(self) -> list[dict[str, Any]]:
        """Files shared by files.completeUploadExternal: id, title, filename, content
        (decoded), channel, thread_ts and initial_comment, in order of completion."""
        with self._cond:
            return [dict(f) for f in self._uploads.values() if f.get("shared")]

    def set_usergroup(self, group_id: str, user_ids: list[str]) -> None:
        with self._cond:
            self._usergroups[group_id] = list(user_ids)

    def wait_socket_connected(self, timeout: float = 10.0) -> None:
        self._socket_mode.wait_connected(timeout)

    def socket_connection_count(self) -> int:
        return self._socket_mode.connection_count()

    def send_envelope(
        self,
        type: str,
        payload: dict,
        *,
        accepts_response_payload: bool = True,
        timeout: float = 10.0,
    ) -> dict:
        return self._socket_mode.send_envelope(
            type, payload, accepts_response_payload=accepts_response_payload, timeout=timeout
        )

    # -- request handling (called from HTTP handler threads) ---------------------------------

    def handle_api(self, method: str, body: dict, headers: dict[str, str]) -> _Reply:
        failure = self._take_failure(method)
        retry_after = None
        if failure is not None:
            status, response = failure.status, {"ok": False, "error": failure.error}
            retry_after = failure.retry_after
        elif body.get("_invalid_json"):
            status, response = 200, {"ok": False, "error": "invalid_json"}
        else:
            token = headers.get("authorization", "").removeprefix("Bearer ").strip()
            auth_error = self._auth_error(method, token or str(body.get("token", "")))
            handler = self._methods.get(method, lambda _body: {"ok": True})
            response = {"ok": False, "error": auth_error} if auth_error else handler(body)
            status = 200
        self._record(SlackCall(method, body, headers, None, time.monotonic(), status, response))
        return _Reply(status, json.dumps(response), "application/json; charset=utf-8", retry_after)

    def handle_response_url(self, key: str, body: dict, headers: dict[str, str]) -> _Reply:
        if isinstance(body.get("payload"), str):  # the incoming-webhook form: payload=<json>
            body = parse_body("application/json", body["payload"].encode("utf-8"), "")
        failure = self._take_failure("response_url")
        if failure is not None:
            status, answer, retry_after = failure.status, failure.error, failure.retry_after
        else:
            (status, answer), retry_after = self._response_url_answer(key, body), None
        response = {"ok": True} if status == 200 else {"ok": False, "error": answer}
        self._record(
            SlackCall("response_url", body, headers, key, time.monotonic(), status, response)
        )
        return _Reply(status, answer, "text/html", retry_after)

    def _response_url_answer(self, key: str, body: dict) -> tuple[int, str]:
        if body.get("_invalid_json") or "_raw" in body:
            return 400, "invalid_payload"
        if not body.get("delete_original"):
            problem = message_problem(body)
            if problem:
                body["_invalid_reason"] = problem[1]
                return 400, problem[0]
        with self._cond:
            if self._response_uses.get(key, 0) >= RESPONSE_URL_USES:
                return 404, "used_url"
            self._response_uses[key] = self._response_uses.get(key, 0) + 1
        return 200, "ok"

    def handle_upload(self, file_id: str, raw: bytes, headers: dict[str, str]) -> _Reply:
        """The upload URL files.getUploadURLExternal hands out: takes the raw bytes (the
        content is kept out of the recorded call, so data is never mistaken for a message)."""
        with self._cond:
            upload = self._uploads.get(file_id)
            if upload is not None and not upload.get("shared"):
                upload["content"] = raw.decode("utf-8", errors="replace")
                upload["uploaded"] = True
        status = 200 if upload is not None else 404
        body = {"file_id": file_id, "bytes": len(raw)}
        response = {"ok": status == 200}
        call = SlackCall("upload", body, headers, file_id, time.monotonic(), status, response)
        self._record(call)
        return _Reply(status, f"OK - {len(raw)}" if status == 200 else "not found", "text/plain")

    def _take_failure(self, method: str) -> _Failure | None:
        with self._cond:
            queue = self._failures.get(method)
            return queue.popleft() if queue else None

    def _record(self, call: SlackCall) -> None:
        with self._cond:
            self._calls.append(call)
            self._cond.notify_all()

    def _auth_error(self, method: str, token: str) -> str | None:
        wanted, other = self.bot_token, self.app_token
        if method == "apps.connections.open":
            wanted, other = other, wanted
        if not token:
            return "not_authed"
        if token == wanted:
            return None
        return "not_allowed_token_type" if token == other else "invalid_auth"

    # -- Web API methods ---------------------------------------------------------------------

    def _auth_test(self, body: dict) -> dict:
        return {
            "ok": True,
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": "ngrok-ops test",
            "user": "ngrok-ops",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _next_ts(self) -> str:
        n = next(self._ts_counter)
        return f"{1700000000 + n // 10000}.{n % 10000 * 100:06d}"

    def _message_refusal(self, body: dict) -> dict | None:
        if not body.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        problem = message_problem(body)
        if problem is None:
            return None
        body["_invalid_reason"] = problem[1]
        return {"ok": False, "error": problem[0]}

    def _message(self, body: dict, ts: str) -> dict:
        message = {
            "type": "message",
            "text": body.get("text", ""),
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "ts": ts,
        }
        for name in ("blocks", "attachments", "thread_ts", "metadata"):
            if name in body:
                message[name] = body[name]
        return message

    def _post_message(self, body: dict) -> dict:
        refusal = self._message_refusal(body)
        if refusal:
            return refusal
        ts = self._next_ts()
        message = self._message(body, ts)
        with self._cond:
            self._messages[(body["channel"], ts)] = message
        return {"ok": True, "channel": body["channel"], "ts": ts, "message": message}

    def _post_ephemeral(self, body: dict) -> dict:
        refusal = self._message_refusal(body)
        if refusal:
            return refusal
        if not body.get("user"):
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "message_ts": self._next_ts()}  # ephemerals can't be updated later

    def _update(self, body: dict) -> dict:
        refusal = self._message_refusal(body)
        if refusal:
            return refusal
        channel, ts = body["channel"], str(body.get("ts", ""))
        with self._cond:
            old = self._messages.get((channel, ts))
            if old is None:
                return {"ok": False, "error": "message_not_found"}
            message = self._message(body, ts) | {"edited": {"user": self.bot_user_id, "ts": ts}}
            if "thread_ts" in old:
                message["thread_ts"] = old["thread_ts"]
            self._messages[(channel, ts)] = message
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": message["text"],
            "message": message,
        }

    def _views_publish(self, body: dict) -> dict:
        user, view = body.get("user_id"), body.get("view")
        if not user:
            return {"ok": False, "error": "invalid_arguments"}
        problem = view_problem(view)
        if problem is not None:
            body["_invalid_reason"] = problem
            return {"ok": False, "error": "invalid_arguments"}
        with self._cond:
            self._home_views[str(user)] = view
        return {"ok": True, "view": {"id": "V" + uuid.uuid4().hex[:10].upper(), **view}}

    def home_view(self, user_id: str) -> dict | None:
        """The Home tab last published for this user."""
        with self._cond:
            return self._home_views.get(user_id)

    def message(self, channel: str, ts: str) -> dict | None:
        """A posted message as it is now (after any chat.update)."""
        with self._cond:
            return self._messages.get((channel, ts))

    def _get_permalink(self, body: dict) -> dict:
        """chat.getPermalink: a link for a message that exists, `message_not_found` for one
        never posted (https://docs.slack.dev/reference/methods/chat.getPermalink)."""
        channel, ts = body.get("channel"), str(body.get("message_ts", ""))
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        with self._cond:
            known = (channel, ts) in self._messages
        if not known:
            return {"ok": False, "error": "message_not_found"}
        link = f"https://{TEAM_DOMAIN}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        return {"ok": True, "channel": channel, "permalink": link}

    def _conversations_info(self, body: dict) -> dict:
        channel = body.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        with self._cond:
            facts = dict(self._channels.get(channel, {}))
        if not facts.pop("_exists", True):
            return {"ok": False, "error": "channel_not_found"}
        info = {"id": channel, "name": channel.lower(), "is_channel": True, "is_private": False}
        info |= {"is_archived": False, "is_member": True, "is_im": False, "is_group": False}
        return {"ok": True, "channel": info | facts}

    def _users_info(self, body: dict) -> dict:
        user = body.get("user")
        if not user:
            return {"ok": False, "error": "user_not_found"}
        name = user.lower()
        profile = {"display_name": name, "real_name": f"User {user}"}
        info = {"id": user, "team_id": self.team_id, "name": name, "real_name": f"User {user}"}
        info |= {"deleted": False, "is_admin": False, "tz": "UTC", "profile": profile}
        return {"ok": True, "user": info | {"is_bot": user == self.bot_user_id}}

    def _usergroup_users(self, body: dict) -> dict:
        with self._cond:
            users = self._usergroups.get(str(body.get("usergroup", "")))
        if users is None:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(users)}

    def _delete(self, body: dict) -> dict:
        channel, ts = body.get("channel"), str(body.get("ts", ""))
        with self._cond:
            if self._messages.pop((str(channel), ts), None) is None:
                return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": channel, "ts": ts}

    def _conversations_open(self, body: dict) -> dict:
        """A DM with one user: the same D… id every time for the same user."""
        users = str(body.get("users") or "")
        if not users or "," in users:
            return {"ok": False, "error": "users_list_not_supplied" if not users else "not_allowed"}
        return {"ok": True, "channel": {"id": "D" + users.lstrip("UW"), "is_im": True}}

    def _get_upload_url(self, body: dict) -> dict:
        """https://docs.slack.dev/reference/methods/files.getUploadURLExternal: filename
        and length (bytes) are required; answers an upload_url and a file_id."""
        filename, length = body.get("filename"), str(body.get("length", ""))
        if not filename or not length.isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{uuid.uuid4().hex[:10].upper()}"
        with self._cond:
            self._uploads[file_id] = {"id": file_id, "filename": filename, "length": int(length)}
        return {
            "ok": True,
            "upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}",
            "file_id": file_id,
        }

    def _complete_upload(self, body: dict) -> dict:
        """https://docs.slack.dev/reference/methods/files.completeUploadExternal: `files` is
        a JSON array of {id, title}; every id must have been uploaded; shares the files to
        channel_id (and thread_ts) with initial_comment."""
        files = body.get("files")
        if isinstance(files, str):  # form fields that look like JSON arrive decoded already
            try:
                files = json.loads(files)
            except ValueError:
                return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        if body.get("thread_ts") and not body.get("channel_id"):
            return {"ok": False, "error": "invalid_arguments"}
        shared = []
        with self._cond:
            for item in files:
                upload = self._uploads.get(str((item or {}).get("id")))
                if upload is None or not upload.get("uploaded"):
                    return {"ok": False, "error": "file_not_found"}
                upload |= {
                    "title": item.get("title") or upload["filename"],
                    "channel": body.get("channel_id"),
                    "thread_ts": body.get("thread_ts"),
                    "initial_comment": body.get("initial_comment"),
                    "shared": True,
                }
                shared.append(
                    {"id": upload["id"], "title": upload["title"], "name": upload["filename"]}
                )
        return {"ok": True, "files": shared}

    def _views_open(self, body: dict) -> dict:
        if not body.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        view = body.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        if not isinstance(view, dict) or view.get("type") != "modal":
            return {"ok": False, "error": "invalid_arguments"}
        for block in view.get("blocks") or []:
            problem = message_problem({"blocks": [block]})
            if problem:
                return {"ok": False, "error": problem[0]}
        return {"ok": True, "view": {"id": f"V{uuid.uuid4().hex[:8].upper()}", **view}}

    def _connections_open(self, body: dict) -> dict:
        return {"ok": True, "url": self._socket_mode.issue_url()}


class _HttpServer(ThreadingHTTPServer):
    """Knows its SlackApiServer and its open connections, so stop() can close keep-alives."""

    daemon_threads = True
    # socketserver's default backlog is 5: the replies of a 50-command burst overflowed it
    # (72 listen overflows in one bench/ack_latency.py run, 0 at 128), and each connection
    # the kernel dropped went on only after TCP's 1 s retransmission (warm replies' p99
    # 1.12 s, against 0.30 s at 128). Slack itself never stalls a burst like that.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, slack: SlackApiServer) -> None:
        super().__init__(address, handler)
        self.slack = slack
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()

    def close_all(self) -> None:
        self.server_close()
        with self.sockets_lock:
            for sock in list(self.open_sockets):
                with contextlib.suppress(OSError):  # already closed by the client
                    sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 30
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        with self.server.sockets_lock:
            self.server.open_sockets.add(self.connection)

    def finish(self) -> None:
        with self.server.sockets_lock:
            self.server.open_sockets.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: failing tests show the recorded calls instead."""

    def _read_body(self) -> bytes:
        """Content-Length bodies only: slack_sdk, WebhookClient and httpx all send one."""
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        raw = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = parse_body(headers.get("content-type", ""), raw, parts.query)
        api_method = parts.path.removeprefix("/api/")
        response_key = parts.path.removeprefix("/response/")
        if parts.path.startswith("/upload/"):
            file_id = parts.path.removeprefix("/upload/")
            reply = self.server.slack.handle_upload(file_id, raw, headers)
        elif parts.path.startswith("/api/") and api_method:
            reply = self.server.slack.handle_api(api_method, body, headers)
        elif parts.path.startswith("/response/") and response_key:
            reply = self.server.slack.handle_response_url(response_key, body, headers)
        else:
            reply = _Reply(404, "not found", "text/plain; charset=utf-8")
        data = reply.text.encode("utf-8")
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(data)))
        if reply.retry_after is not None:
            self.send_header("Retry-After", str(reply.retry_after))
        self.end_headers()
        self.wfile.write(data)
