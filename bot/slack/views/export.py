"""Files the bot uploads: the whole matching list (and the audit log) as CSV.

CSV is data, not mrkdwn, so nothing is escaped for Slack; cells that a spreadsheet would
read as a formula (=, +, -, @ at the start) get a leading apostrophe, so an agent's
metadata cannot run anything in the reader's spreadsheet.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.ngrok.models import TunnelSession
from bot.slack import blocks as bk
from bot.slack.views.agent_text import agent_name

SESSION_COLUMNS = (
    "host", "session_id", "region", "os", "agent_version", "ip", "transport", "started_at",
    "credential_id", "metadata",
)  # fmt: skip
AUDIT_COLUMNS = (
    "time_utc", "event", "action", "actor", "requester", "approver", "host", "session_id",
    "account", "outcome", "detail", "duration_ms", "channel", "request_id",
)  # fmt: skip


def _safe(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[_safe(v) for v in row] for row in rows])
    return out.getvalue()


def render_sessions_csv(sessions: Sequence[TunnelSession]) -> str:
    """Every matching session, one row each, newest first."""
    return _csv(
        SESSION_COLUMNS,
        [_session_row(s) for s in sessions],
    )


def _session_row(s: TunnelSession) -> list[str]:
    started = s.started_at.isoformat() if s.started_at else ""
    facts = [s.id, s.region, s.os, s.agent_version, s.ip, s.transport, started]
    return [agent_name(s.metadata) or "", *facts, s.credential.id, s.metadata]


def render_audit_csv(entries: Sequence[Mapping[str, Any]]) -> str:
    """The machine form of the audit log: one row per record, the raw field values."""
    rows = []
    for e in entries:
        ts = e.get("ts")
        when = (
            datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
            if isinstance(ts, int | float) and not isinstance(ts, bool)
            else ""
        )
        host = agent_name(str(e.get("metadata") or "")) or ""
        rows.append([when, *(e.get(c) if c != "host" else host for c in AUDIT_COLUMNS[1:])])
    return _csv(AUDIT_COLUMNS, rows)


def export_comment(user_id: str, count: int, what: str, query_text: str = "") -> str:
    """The line posted with an uploaded file (mrkdwn, escaped)."""
    filters = f" matching {bk.code_span(query_text, 300)}" if query_text else ""
    return f"{bk.user_mention(user_id)} exported {count} {what}{filters}."
