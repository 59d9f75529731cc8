"""Refuses malformed Slack request bodies with a 400 and one log line, before Bolt parses them.

Bolt's WSGI adapter decodes the body and `BoltRequest` parses it before the signature is
checked, so invalid UTF-8, JSON nested deeper than Python's recursion limit, a `payload=`
that is not a JSON object or a JSON body labelled as a form raise inside Bolt: a 500 with a
traceback for anyone who can reach the URL. The checks here mirror Bolt's `parse_body`
(slack_bolt/request/internals.py) and only ever refuse; nothing is acted on. Hand-written
because no library knows Bolt's parsing rules; the nesting scan exists because `json.loads`
itself recurses.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt import BoltRequest, BoltResponse
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.adapter.wsgi.http_response import WsgiHttpResponse

MAX_DEPTH = 64  # Slack's deepest payloads (rich text in a view_submission) nest about 15

log = logging.getLogger("ngrok_ops.http")

# A JSON string (escapes included) or a bracket outside strings.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_OPEN = frozenset(b"[{")


class GuardedRequestHandler(SlackRequestHandler):
    """Bolt's WSGI handler that answers 400 to bodies Bolt cannot parse."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """POSTs to Bolt's path go through `guarded_dispatch`; the rest as Bolt does it."""
        request = WsgiHttpRequest(environ)
        if request.method != "POST" or request.path != self.path:
            return super().__call__(environ, start_response)
        stream = environ.get("wsgi.input")
        length = int(environ.get("CONTENT_LENGTH") or 0)  # bot/serving.py set the real one
        raw = bytes(stream.read(length)) if stream is not None and length > 0 else b""
        answer = self.guarded_dispatch(raw, request, str(environ.get("CONTENT_TYPE") or ""))
        response = WsgiHttpResponse(status=answer.status, headers=answer.headers, body=answer.body)
        start_response(response.status, response.get_headers())
        return response.get_body()

    def guarded_dispatch(
        self, raw: bytes, request: WsgiHttpRequest, content_type: str
    ) -> BoltResponse:
        """Checks the raw body, then builds the BoltRequest (whose extractors can still fail
        on well-formed JSON of the wrong shape), then lets Bolt verify and dispatch."""
        problem = body_problem(raw, content_type)
        if problem is None:
            try:
                bolt_request = BoltRequest(
                    body=raw.decode("utf-8"),
                    query=request.query_string,
                    headers=request.get_headers(),
                )
            except (ValueError, TypeError, AttributeError, KeyError, IndexError) as error:
                problem = f"Bolt cannot read it ({type(error).__name__})"
            else:
                return self.app.dispatch(bolt_request)
        log.warning(
            "refused a request with 400: %s (%d bytes, %s)", problem, len(raw), content_type
        )
        return BoltResponse(status=400, body="Bad Request\n")


def body_problem(raw: bytes, content_type: str) -> str | None:
    """Why Bolt could not parse this body, or None. Follows `parse_body`: JSON when the type
    says so or the body starts with `{`, else a form whose `payload` field is JSON."""
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    if not body:
        return None
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded" and body.lstrip()[:1] in ("{", "["):
        return "a JSON body labelled as a form"
    if media_type == "application/json" or body.startswith("{"):
        return _json_object_problem(raw)
    if "payload" in body:
        payload = dict(parse_qsl(body, keep_blank_values=True)).get("payload")
        if payload is not None:
            return _json_object_problem(payload.encode("utf-8"), what="the payload field")
    return None


def _json_object_problem(raw: bytes, *, what: str = "the body") -> str | None:
    # json.loads first: it is linear on any input, and once the text is known to be JSON the
    # string pattern of `nesting_depth` cannot backtrack (an unterminated `"\\"\\"…` could).
    try:
        value: Any = json.loads(raw)
    except RecursionError:
        return f"{what} nests deeper than {MAX_DEPTH}"
    except ValueError:
        return f"{what} is not JSON"
    if nesting_depth(raw) > MAX_DEPTH:
        return f"{what} nests deeper than {MAX_DEPTH}"
    if not isinstance(value, dict):
        return f"{what} is not a JSON object"
    return None


def nesting_depth(raw: bytes) -> int:
    """The deepest bracket nesting outside JSON strings, without recursing (for valid JSON:
    see `_json_object_problem`)."""
    depth = deepest = 0
    for match in _TOKENS.finditer(raw):
        token = match.group()
        if len(token) != 1:
            continue  # a string
        if token[0] in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest
