"""Logging set-up with a last line of defence against secrets and forged lines in log records.

Text from outside (request bodies, headers, paths, Slack's and ngrok's answers) reaches log
messages in many places; rather than escape it at each call, every handler escapes control
characters and clips the message, so one record is always one line. Tracebacks keep their
lines, each indented, so none of them can pass for a record of its own.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

_TOKEN = re.compile(r"\b(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
MAX_MESSAGE = 2000  # characters of one record's message; the rest is counted, not logged
# Bolt logs the whole body of every request whose signature fails, at INFO
# (slack_bolt/middleware/request_verification/request_verification.py, _debug_log_error).
_BOLT_VERIFICATION = "slack_bolt.RequestVerification"
_UNSIGNED_BODY = re.compile(r", body: (.*)\)$", re.DOTALL)


def escape(text: str, limit: int = MAX_MESSAGE) -> str:
    """One line: control characters as escapes, clipped to `limit` characters."""
    line = _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), text)
    if len(line) > limit:
        line = f"{line[:limit]}… ({len(line) - limit} more characters)"
    return line


class OneLineFilter(logging.Filter):
    """A handler filter that makes each record's message one escaped, clipped line, and keeps
    the bodies of unsigned requests out of Bolt's verification message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.name == _BOLT_VERIFICATION and not message.endswith("not logged)"):
            message = _UNSIGNED_BODY.sub(
                lambda m: f", body: {len(m.group(1))} characters, not logged)", message
            )
        record.msg, record.args = escape(message), None
        return True


class RedactingFormatter(logging.Formatter):
    """Masks Slack tokens and known secret values in the *finished* line, so tracebacks and
    exception texts are covered too, not only the message."""

    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        line = _TOKEN.sub("[redacted]", super().format(record))
        first, newline, rest = line.partition("\n")
        if newline:  # a traceback or stack: every further line indented, control chars escaped
            lines = [_CONTROL.sub(lambda m: escape(m.group()), part) for part in rest.split("\n")]
            line = first + "".join(f"\n    {part}" for part in lines)
        for secret in self._secrets:
            line = line.replace(secret, "[redacted]")
        return line


def configure_logging(level: str, secrets: Iterable[str]) -> None:
    """Plain lines on stderr; stdout is kept for the JSON audit records."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets)
    )
    handler.addFilter(OneLineFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # gunicorn's own handlers (bot/gunicorn_conf.py) log request lines and parse errors.
    for name in ("gunicorn.error", "gunicorn.access"):
        for gunicorn_handler in logging.getLogger(name).handlers:
            gunicorn_handler.addFilter(OneLineFilter())
    root.setLevel(level)
    # httpx logs every request at INFO; the ngrok client logs what matters itself.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    # huey logs two lines per job at INFO; failures reach the log as `job … failed` anyway.
    logging.getLogger("huey").setLevel(max(logging.WARNING, root.level))
