"""The ngrok error tree, how an HTTP answer maps onto it, and secret redaction.

Commands turn each class into one clear sentence, so the classes follow what a user can do
next (fix the key, wait, give up, check the session list), not the HTTP status alone. The
status decides first and `error_code` refines it: the official 404 carries no code and a
proxy's 502 carries no JSON at all.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"

# "Your credential: TOKEN" (ERR_NGROK_202/203/206/207/208), "Bearer TOKEN", and anything shaped like
# an ngrok API key or authtoken (`2Ab…27 chars_…`), which the API may echo back in a message.
_TOKEN_PATTERNS = (
    re.compile(r"(?i)(credential:\s*)(\"[^\"]*\"|'[^']*'|\S+)"),
    re.compile(r"(?i)(bearer\s+)([^\s\"',;]+)"),
    re.compile(r"()\b[0-9][A-Za-z0-9]{20,40}_[A-Za-z0-9]{8,}\b"),
)

AUTH_CODES = frozenset({f"ERR_NGROK_{n}" for n in (*range(200, 209), 220)})
RATE_LIMIT_CODES = frozenset({"ERR_NGROK_225", "ERR_NGROK_226"})
UNSUPPORTED_CODES = frozenset(
    {f"ERR_NGROK_{n}" for n in (804, 805, 806, 1121, 1122, 1700, 1701, 1702)}
)
AGENT_FAILED_CODES = frozenset({"ERR_NGROK_807", "ERR_NGROK_808", "ERR_NGROK_809"})
MAY_HAVE_BEEN_APPLIED_CODE = "ERR_NGROK_810"
NO_UPDATE_CODE = "ERR_NGROK_809"  # "agent failed to update: ERR"; the agent's text says why


def redact(text: str, secrets: Iterable[str]) -> str:
    """Removes every given secret and every token-shaped word from `text`.

    Longest secrets go first so a secret that contains another is removed whole.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


class NgrokError(Exception):
    """Any failure talking to the ngrok API; `message` is already redacted."""

    may_have_been_applied: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        operation_id: str | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        secrets = tuple(secrets)
        self.message = redact(message, secrets)
        self.status = status
        self.error_code = redact(error_code, secrets) if error_code else None
        self.operation_id = redact(operation_id, secrets) if operation_id else None
        super().__init__(self.message)

    def __str__(self) -> str:
        facts = [
            f"HTTP {self.status}" if self.status is not None else "",
            self.error_code or "",
            f"operation {self.operation_id}" if self.operation_id else "",
        ]
        suffix = ", ".join(fact for fact in facts if fact)
        return f"{self.message} ({suffix})" if suffix else self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, status={self.status!r}, "
            f"error_code={self.error_code!r}, operation_id={self.operation_id!r})"
        )


class NotFound(NgrokError):
    """The session (or route) does not exist: for a session, it is no longer online."""


class Unauthorized(NgrokError):
    """The API key is missing, wrong, not an API key, or not allowed from this IP."""


class RateLimited(NgrokError):
    """Refused by the rate or concurrency limiter: nothing was done; try again later."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class Unsupported(NgrokError):
    """The agent, transport (SSH) or plan does not allow this operation."""


class AgentFailed(NgrokError):
    """The agent received the operation and reported that it failed."""


class MayHaveBeenApplied(NgrokError):
    """The request may have reached the server and its outcome is unknown: never re-send it."""

    may_have_been_applied = True


class Unavailable(NgrokError):
    """The API could not be reached or answered something that is not the API (5xx, HTML...)."""


class ConnectFailed(Unavailable):
    """The connection could not be made, so nothing was sent: safe to retry even a POST."""


class BadRequest(NgrokError):
    """Any other 4xx, including an invalid filter (`invalid_cel_expression`)."""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` in seconds from now (delta-seconds or HTTP date); None if absent or junk."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return parsed if isinstance(parsed, dict) else None


def error_from_response(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    method: str,
    secrets: Iterable[str] = (),
) -> NgrokError:
    """Classifies a non-2xx answer. POSTs that failed on the server side become
    MayHaveBeenApplied, because the action may already have reached the agent."""
    payload = _json_object(body) or {}
    code = payload.get("error_code")
    code = code if isinstance(code, str) and code else None
    details = payload.get("details")
    op_id = details.get("operation_id") if isinstance(details, Mapping) else None
    op_id = op_id if isinstance(op_id, str) and op_id else headers.get("ngrok-operation-id")
    msg = payload.get("msg")
    if not isinstance(msg, str) or not msg:
        kind = "an error" if payload else "a body that is not the ngrok API's JSON"
        msg = f"The ngrok API answered HTTP {status} with {kind}."
    facts: dict[str, Any] = {
        "status": status,
        "error_code": code,
        "operation_id": op_id,
        "secrets": secrets,
    }
    is_post = method.upper() != "GET"

    if status == 429 or code in RATE_LIMIT_CODES:
        retry_after = parse_retry_after(headers.get("retry-after"))
        return RateLimited(msg, retry_after=retry_after, **facts)
    if code == MAY_HAVE_BEEN_APPLIED_CODE or (status >= 500 and is_post):
        if not is_post:
            return Unavailable(msg, **facts)
        return MayHaveBeenApplied(outcome_unknown(msg), **facts)
    if status >= 500 or status < 400:
        return Unavailable(msg, **facts)
    if code in UNSUPPORTED_CODES:
        return Unsupported(msg, **facts)
    if code in AGENT_FAILED_CODES:
        return AgentFailed(msg, **facts)
    if status == 404:
        return NotFound(msg, **facts)
    if status in (401, 403) or code in AUTH_CODES:
        return Unauthorized(msg, **facts)
    return BadRequest(msg, **facts)


def outcome_unknown(reason: str) -> str:
    """The sentence every MayHaveBeenApplied carries: the user must look before acting again."""
    return (
        f"{reason.rstrip('.')}. The outcome is unknown: the action may have been applied. "
        "Check the session list before trying again."
    )


def is_no_update_available(error: NgrokError) -> bool:
    """ngrok's answer to an update of an agent already on the latest version: 809 with the
    agent's "no update available". Not a failure for people: the agent is up to date."""
    return error.error_code == NO_UPDATE_CODE and "no update available" in error.message.lower()
