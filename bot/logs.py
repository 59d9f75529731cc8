"""Logging set-up with a last line of defence against secrets in log records."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

_TOKEN = re.compile(r"\b(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+)")


class RedactingFormatter(logging.Formatter):
    """Masks Slack tokens and known secret values in the *finished* line, so tracebacks and
    exception texts are covered too, not only the message."""

    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        line = _TOKEN.sub("[redacted]", super().format(record))
        for secret in self._secrets:
            line = line.replace(secret, "[redacted]")
        return line


def configure_logging(level: str, secrets: Iterable[str]) -> None:
    """Plain lines on stderr; stdout is kept for the JSON audit records."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO; the ngrok client logs what matters itself.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
