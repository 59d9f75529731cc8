"""A thin client for the ngrok API's tunnel sessions, over one long-lived httpx.Client.

It fixes what the official Python client gets wrong (reference §9): action POSTs carry `{}`
with a JSON Content-Type, a 204 is success, every error key is read with `.get()`, and there
are timeouts, pacing and retries. Reads are retried within a time budget; a POST is re-sent
only when it certainly never reached the server (connect errors) or was refused by the rate
limiter (429): anything else after sending may have stopped or restarted an agent already.
"""

from __future__ import annotations

import json
import logging
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from bot.ngrok.errors import (
    BadRequest,
    ConnectFailed,
    MayHaveBeenApplied,
    NgrokError,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
    error_from_response,
    outcome_unknown,
)
from bot.ngrok.models import ACTIONS, Action, Endpoint, SessionPage, TunnelSession
from bot.ngrok.pacing import DEFAULT_BACKOFF, Backoff, Budget, shared_pacer

_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_T = TypeVar("_T")
# Transport errors raised before a single byte of the request went out.
_NOTHING_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _tls_verify(verify: bool | str) -> bool | ssl.SSLContext:
    """httpx 0.28 deprecates a CA bundle path; turn it into an SSLContext."""
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return verify


def _with_filter(uri: str, filter: str | None) -> str:
    """`uri` untouched, unless a filter was asked for and the API dropped it from the URI."""
    if not filter or "filter" in parse_qs(urlsplit(uri).query, keep_blank_values=True):
        return uri
    separator = "&" if urlsplit(uri).query else "?"
    return f"{uri}{separator}{urlencode({'filter': filter})}"


class NgrokClient:
    """List, get, restart, stop and update tunnel sessions. Thread-safe; close() when done."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://api.ngrok.com",
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        verify: bool | str = True,
        pacer: Budget | None = None,
        retry_budget: float = 30.0,
        logger: logging.Logger | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        user_agent: str = "ngrok-ops",
    ) -> None:
        self._secrets = (api_key,)
        self._pacer: Budget = pacer if pacer is not None else shared_pacer(api_key)
        self._local = threading.local()  # urgent() depth, per thread
        self._retry_budget = retry_budget
        self._log = logger or logging.getLogger(__name__)
        self._backoff = backoff
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._base = httpx.URL(base_url)
        self._http = httpx.Client(
            base_url=base_url,
            headers={
                "Authorization": f"Bearer {api_key}",
                "Ngrok-Version": "2",
                "User-Agent": user_agent,
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(timeout),
            transport=transport,
            verify=_tls_verify(verify),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"NgrokClient(base_url={str(self._base)!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> NgrokClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- urgency ---------------------------------------------------------------------------

    @contextmanager
    def urgent(self) -> Iterator[None]:
        """Every call this thread makes inside the block may use the budget's reserve: wrap
        the whole of an approved action (its pre-read, the POST, the follow-up reads) so no
        amount of listing delays it. Action POSTs are urgent anyway."""
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1

    def _is_urgent(self, urgent: bool) -> bool:
        return urgent or getattr(self._local, "depth", 0) > 0

    # -- tunnel sessions -------------------------------------------------------------------

    def list_sessions_page(
        self,
        *,
        limit: int = 100,
        before_id: str | None = None,
        filter: str | None = None,
        urgent: bool = False,
    ) -> SessionPage:
        """One page, newest first. `filter` is a CEL expression (see bot.cel)."""
        params = {"limit": str(limit)}
        if before_id:
            params["before_id"] = before_id
        if filter:
            params["filter"] = filter
        return self._session_page(self._get_json("/tunnel_sessions", params, urgent=urgent))

    def next_sessions_page(
        self, page: SessionPage, *, filter: str | None = None, urgent: bool = False
    ) -> SessionPage | None:
        """The page after `page`, fetched from its next_page_uri exactly; None after the last."""
        if not page.next_page_uri or not page.sessions:
            return None
        uri = self._next_uri(page.next_page_uri, filter)
        return self._session_page(self._get_json(uri, urgent=urgent))

    def iter_sessions(
        self,
        *,
        filter: str | None = None,
        page_size: int = 100,
        urgent: bool = False,
        on_page: Callable[[int], None] | None = None,
    ) -> Iterator[TunnelSession]:
        """Every online session matching `filter`, newest first, paging as it goes.
        `urgent=True` is for reads that are part of an approved action; unlike `urgent()`
        it holds however late and in whatever thread the generator is consumed.
        `on_page(n)` is called before page n is fetched (1, 2, …), to report progress."""
        if on_page is not None:
            on_page(1)
        page: SessionPage | None = self.list_sessions_page(
            limit=page_size, filter=filter, urgent=urgent
        )
        seen_uris: set[str] = set()
        number = 1
        while page is not None:
            yield from page.sessions
            if page.next_page_uri in seen_uris:
                raise Unavailable("The ngrok API sent the same next page twice; stopped paging.")
            seen_uris.add(page.next_page_uri or "")
            if on_page is not None and page.next_page_uri and page.sessions:
                number += 1
                on_page(number)
            page = self.next_sessions_page(page, filter=filter, urgent=urgent)

    def get_session(self, session_id: str, *, urgent: bool = False) -> TunnelSession:
        """One session; `urgent=True` for the pre-read of an approved action."""
        raw = self._get_json(f"/tunnel_sessions/{self._checked_id(session_id)}", urgent=urgent)
        return TunnelSession.from_api(raw)

    def act(self, op: Action, session_id: str, *, urgent: bool = True) -> None:
        """One approved action's POST. `urgent=False` for a fleet run's POSTs, which must
        leave the reserve to people's single approved actions."""
        if op not in ACTIONS:
            raise ValueError(f"unknown session action {op!r}; expected one of {ACTIONS}")
        self._post_action(op, session_id, urgent=urgent)

    # -- endpoints -------------------------------------------------------------------------

    def session_endpoints(
        self, session_ids: Collection[str] | None = None
    ) -> dict[str, list[Endpoint]]:
        """Endpoints grouped by their session id (nothing returns "the endpoints of session X").

        With `session_ids`, every one of them is a key (empty list when it has none). Falls back
        to the deprecated /tunnels when /endpoints is not available to this key (404/403).
        """
        try:
            raws = list(self._iter_list("/endpoints", "endpoints"))
        except (NotFound, Unauthorized) as err:
            if err.status not in (403, 404):
                raise
            self._log.info("ngrok /endpoints unavailable (%s); using /tunnels", err.status)
            raws = list(self._iter_list("/tunnels", "tunnels"))
        wanted = set(session_ids) if session_ids is not None else None
        grouped: dict[str, list[Endpoint]] = {sid: [] for sid in wanted or ()}
        for raw in raws:
            endpoint = Endpoint.from_api(raw)
            sid = endpoint.tunnel_session.id
            if sid and (wanted is None or sid in wanted):
                grouped.setdefault(sid, []).append(endpoint)
        return grouped

    # -- plumbing --------------------------------------------------------------------------

    def _checked_id(self, session_id: str) -> str:
        """Ids go into the path, so anything but an id's characters is refused up front."""
        if not isinstance(session_id, str) or not _SESSION_ID.match(session_id):
            raise BadRequest("That is not a valid tunnel session id.", secrets=self._secrets)
        return session_id

    def _next_uri(self, uri: str, filter: str | None) -> str:
        """Refuses a next page on another host: the Authorization header would go with it."""
        target = httpx.URL(uri)
        if (target.scheme, target.host, target.port) != (
            self._base.scheme,
            self._base.host,
            self._base.port,
        ):
            raise Unavailable(
                "The ngrok API sent a next page on another host; not following it.",
                secrets=self._secrets,
            )
        return _with_filter(uri, filter)

    def _session_page(self, raw: dict[str, Any]) -> SessionPage:
        items = raw.get("tunnel_sessions")
        sessions = tuple(
            TunnelSession.from_api(item) for item in items or () if isinstance(item, dict)
        )
        next_uri = raw.get("next_page_uri")
        return SessionPage(sessions, next_uri if isinstance(next_uri, str) and next_uri else None)

    def _iter_list(self, path: str, key: str) -> Iterator[dict[str, Any]]:
        raw = self._get_json(path, {"limit": "100"})
        seen_uris: set[str] = set()
        while True:
            items = [item for item in raw.get(key) or () if isinstance(item, dict)]
            yield from items
            next_uri = raw.get("next_page_uri")
            if not items or not isinstance(next_uri, str) or not next_uri:
                return
            if next_uri in seen_uris:
                raise Unavailable("The ngrok API sent the same next page twice; stopped paging.")
            seen_uris.add(next_uri)
            raw = self._get_json(self._next_uri(next_uri, None))

    def _send(
        self,
        method: str,
        url: str,
        params: dict[str, str] | None = None,
        *,
        urgent: bool = False,
    ) -> httpx.Response:
        """One attempt, inside a budget slot. Transport errors propagate as httpx errors.
        A POST passes its own `urgent` (approved actions: True; a fleet run's: False)."""
        body: dict[str, Any] = {"json": {}} if method == "POST" else {}
        # An approved action's POST may use the window's reserve; so may reads marked urgent.
        with self._pacer.slot(urgent=self._is_urgent(urgent)):
            response = self._http.request(method, url, params=params, **body)
        self._log.debug("ngrok %s %s -> %s", method, response.request.url, response.status_code)
        return response

    def _error(self, response: httpx.Response) -> NgrokError:
        method = response.request.method
        err = error_from_response(
            response.status_code,
            response.content,
            response.headers,
            method=method,
            secrets=self._secrets,
        )
        self._log.warning(
            "ngrok %s %s failed: %s operation_id=%s",
            method,
            response.request.url.path,
            repr(err),
            err.operation_id,
        )
        return err

    def _get_json(
        self, url: str, params: dict[str, str] | None = None, *, urgent: bool = False
    ) -> dict[str, Any]:
        """A GET, retried on 429, 5xx, 810, network errors and non-JSON answers."""

        def attempt() -> dict[str, Any]:
            try:
                response = self._send("GET", url, params, urgent=urgent)
            except httpx.TransportError as exc:
                raise self._transport_error(exc, "GET", url) from exc
            if not response.is_success:
                raise self._error(response)
            try:
                payload = json.loads(response.content)
            except (ValueError, UnicodeDecodeError):
                payload = None
            if not isinstance(payload, dict):
                raise Unavailable(
                    f"The ngrok API answered HTTP {response.status_code} with a body that is "
                    "not a JSON object.",
                    status=response.status_code,
                    operation_id=response.headers.get("ngrok-operation-id"),
                    secrets=self._secrets,
                )
            return payload

        return self._retrying(attempt, lambda err: isinstance(err, (RateLimited, Unavailable)))

    def _post_action(self, op: Action, session_id: str, *, urgent: bool = True) -> None:
        """A POST, re-sent only when it certainly was not applied (see module docstring)."""
        url = f"/tunnel_sessions/{self._checked_id(session_id)}/{op}"

        def attempt() -> None:
            try:
                response = self._send("POST", url, urgent=urgent)
            except httpx.TransportError as exc:
                raise self._transport_error(exc, "POST", url) from exc
            if not response.is_success:
                raise self._error(response)

        self._retrying(attempt, lambda err: isinstance(err, (RateLimited, ConnectFailed)))

    def _transport_error(self, exc: httpx.TransportError, method: str, url: str) -> NgrokError:
        """No answer at all. Unless the connection itself failed (nothing sent), a POST's
        outcome is unknown: a read timeout or a reset may come after the agent acted."""
        path = httpx.URL(url).path
        what = f"No answer from the ngrok API to {method} {path} ({type(exc).__name__})"
        err: NgrokError
        if isinstance(exc, _NOTHING_SENT):
            err = ConnectFailed(
                f"Could not reach the ngrok API ({type(exc).__name__}).", secrets=self._secrets
            )
        elif method == "POST":
            err = MayHaveBeenApplied(outcome_unknown(what), secrets=self._secrets)
        else:
            err = Unavailable(f"{what}.", secrets=self._secrets)
        self._log.warning("ngrok %s", repr(err))
        return err

    def _retrying(
        self, attempt: Callable[[], _T], should_retry: Callable[[NgrokError], bool]
    ) -> _T:
        """Runs `attempt` until it succeeds, raises something else, or the budget is spent.

        Waits full-jitter exponential backoff, but never less than a `Retry-After` the server
        sends; a Retry-After longer than the remaining budget ends the retries at once rather
        than retry earlier than the server asked.
        """
        deadline = self._clock() + self._retry_budget
        tries = 0
        while True:
            try:
                return attempt()
            except NgrokError as err:
                if not should_retry(err):
                    raise
                remaining = deadline - self._clock()
                retry_after = getattr(err, "retry_after", None) or 0.0
                if remaining <= 0 or retry_after > remaining:
                    raise
                wait = min(max(self._backoff.delay(tries, self._rand), retry_after), remaining)
                tries += 1
                self._log.debug("ngrok retry %d in %.2fs after %s", tries, wait, type(err).__name__)
                self._sleep(wait)
