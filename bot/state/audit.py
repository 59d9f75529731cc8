"""One record per request, approval, denial, expiry, execution and result.

Each record becomes a JSON line on stdout (for the log pipeline), a row in the store (for
`/ngrok audit`) and, when an audit channel is configured, a line there (worded by
bot.slack.views.audit, posted by whoever built the Auditor). The public record
in the requester's thread is posted by the command that ran the action, because only it
knows which message to edit.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from bot.state.store import Store, StoreError

log = logging.getLogger("ngrok_ops.audit")


class Auditor:
    """Writes each record to stdout, the store and the audit channel."""

    def __init__(
        self,
        store: Store,
        *,
        audit_channel: str | None,
        announce: Callable[[str, dict[str, Any]], None] | None,
        stream: IO[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._audit_channel = audit_channel
        self._announce = announce
        self._stream = stream or sys.stdout
        self._clock = clock
        self._lock = threading.Lock()

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        """Records one event; a failing announcement is logged, never lost silently."""
        entry: dict[str, Any] = {"ts": round(self._clock(), 3), "event": event}
        entry.update({key: value for key, value in fields.items() if value is not None})
        entry.setdefault("outcome", event)
        line = json.dumps({"audit": entry}, ensure_ascii=False, sort_keys=True)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()
        try:
            self._store.add_audit(entry)
        except StoreError:
            # The JSON line above is the record of last resort; an action that already ran
            # must still be announced, so a store outage never stops the caller here.
            log.exception("could not store the audit record; it is in the JSON log line")
        if self._audit_channel and self._announce is not None:
            try:
                self._announce(self._audit_channel, entry)
            except Exception:
                log.exception("could not post the audit record to the audit channel")
        return entry
