"""The ngrok API's request handling over a simulated fleet: paths, credentials, the version
header, query checks, the action POSTs and the error shapes of shared/reference/ngrok-api.md
(§7, §10). No sockets here: `demo_transport` serves it to an httpx client in process (the
console's `--demo`), and the tests' stand-in serves the same handler over real HTTP.
"""

from __future__ import annotations

import hmac
import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx

from bot.demo.fleet import COLLECTIONS, ApiError, Fleet
from bot.demo.ksuid import encode_ksuid

ACTIONS = ("restart", "stop", "update")
DEMO_API_KEY = "ngrok-demo-api-key-not-a-secret"
DEMO_BASE_URL = "https://api.ngrok.com"
MSG_218 = (
    "Your request has not specified an API version. Please include the version you wish to "
    "use in the Ngrok-Version header. Supported versions: 2."
)


@dataclass
class Behaviour:
    """What a caller may change while the API runs (tests flip these on a live stand-in)."""

    restart_delay: float = 0.2
    legacy_plan: bool = False
    next_page_keeps_filter: bool = False


@dataclass(frozen=True)
class ApiReply:
    """One answer: status, JSON body bytes (empty for 204) and headers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class FleetApi:
    """The resources of one account. Thread-safe: one lock around every fleet access."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        api_key: str,
        behaviour: Behaviour | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fleet = fleet
        self._api_key = api_key
        self.behaviour = behaviour or Behaviour()
        self._clock = clock
        self.lock = threading.RLock()
        self._op_rng = random.Random()

    def world(self) -> Fleet:
        """The fleet with due reconnects applied; call with `lock` held."""
        self._fleet.reconnect_due(self._clock())
        return self._fleet

    def error(self, error: ApiError) -> ApiReply:
        """The error body of reference §7, with its operation id in body and header."""
        op_id = "op_" + encode_ksuid(self._op_rng.getrandbits(160))
        body: dict[str, Any] = {"details": {"operation_id": op_id, **error.details}}
        body.update(msg=error.msg, status_code=error.status)
        if error.code is not None:
            body = {"error_code": error.code, "status_code": error.status, "msg": error.msg, **body}
        return ApiReply(error.status, _dumps(body), {"ngrok-operation-id": op_id})

    def ok(self, status: int, obj: Any = None) -> ApiReply:
        op_id = "op_" + encode_ksuid(self._op_rng.getrandbits(160))
        body = b"" if obj is None else _dumps(obj)
        return ApiReply(status, body, {"ngrok-operation-id": op_id})

    def handle(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> ApiReply:
        """Answers one request; `headers` has lower-case names."""
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
                with self.lock:  # serialized under the lock: the objects are live
                    keeps = self.behaviour.next_page_keeps_filter
                    return self.ok(200, self.world().list_page(parts[0], params, keeps))
            obj_id = parts[1]
            if not obj_id.startswith(prefix):
                msg = f"The resource ID '{obj_id}' is invalid: expected an ID starting '{prefix}'."
                raise ApiError(400, "ERR_NGROK_227", msg)
            if action is None:
                with self.lock:
                    return self.ok(200, self.world().get_object(parts[0], obj_id))
            _check_json_body(headers, body)
            return self._act(obj_id, action)
        except ApiError as error:
            return self.error(error)

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

    def _act(self, session_id: str, action: str) -> ApiReply:
        if self.behaviour.legacy_plan:
            code, what = (
                ("ERR_NGROK_1702", "update")
                if action == "update"
                else ("ERR_NGROK_1701", "stop or restart")
            )
            msg = f"Your account is on a legacy plan, which cannot {what} tunnel sessions."
            raise ApiError(403, code, msg)
        with self.lock:
            self.world().apply_action(
                session_id, action, self._clock(), self.behaviour.restart_delay
            )
        return self.ok(204)


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


def parse_query(
    query: str, allowed: tuple[str, ...], arrays: tuple[str, ...]
) -> dict[str, list[str]]:
    """Query parameters by name; unknown (231) and repeated (232) ones are refused."""
    params: dict[str, list[str]] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in allowed:
            raise ApiError(400, "ERR_NGROK_231", f"Unknown query parameter '{key}'.")
        if key in params and key not in arrays:
            raise ApiError(400, "ERR_NGROK_232", f"The query parameter '{key}' is repeated.")
        params.setdefault(key, []).append(value)
    return params


def demo_api(
    *, sessions: int = 300, seed: int = 7, restart_delay: float = 1.0, now: float | None = None
) -> FleetApi:
    """A fleet of `sessions` agents answering as api.ngrok.com would, for `console --demo`."""
    fleet = Fleet(DEMO_BASE_URL, random.Random(seed))
    fleet.generate(sessions, time.time() if now is None else now)
    return FleetApi(fleet, api_key=DEMO_API_KEY, behaviour=Behaviour(restart_delay=restart_delay))


def demo_transport(api: FleetApi) -> httpx.MockTransport:
    """An httpx transport that answers every request from `api`, never touching a socket."""

    def answer(request: httpx.Request) -> httpx.Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        reply = api.handle(
            request.method,
            request.url.path,
            request.url.query.decode("ascii", "replace"),
            headers,
            request.read(),
        )
        return httpx.Response(reply.status, content=reply.body, headers=reply.headers)

    return httpx.MockTransport(answer)
