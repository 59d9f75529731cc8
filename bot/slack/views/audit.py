"""`audit`: recent records for operators and approvers, and the audit channel's line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.slack import blocks as bk

_AUDIT_DETAIL = 200


def render_audit(entries: Sequence[Mapping[str, Any]], *, title: str = "") -> dict[str, Any]:
    """Recent audit records, newest first as given; `title` names the filter, if any."""
    heading = f"Recent actions{': ' + title if title else ''}"
    blocks: list[dict[str, Any]] = [bk.header(heading)]
    if not entries:
        blocks.append(bk.section("Nothing recorded yet."))
        return bk.message(heading, blocks)
    budget = bk.MAX_MESSAGE_TEXT - bk.text_length(blocks) - 300
    chunk: list[str] = []
    shown = 0
    for line in (_audit_line(e) for e in entries):
        budget -= len(line) + 1
        if budget < 0 or len(blocks) >= bk.MAX_BLOCKS - 2:
            break
        if sum(len(c) + 1 for c in chunk) + len(line) > bk.MAX_SECTION_TEXT:
            blocks.append(bk.section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
        shown += 1
    blocks.append(bk.section("\n".join(chunk)))
    if shown < len(entries):
        blocks.append(
            bk.context(f"{len(entries) - shown} older entries did not fit; ask for fewer.")
        )
    return bk.message(f"{heading} ({len(entries)})", blocks)


def _audit_line(entry: Mapping[str, Any]) -> str:
    when = _audit_time(entry.get("ts"))
    parts = [
        bk.date_token(when) if when else "?",
        bk.user_mention(str(entry.get("actor") or "")),
        f"*{bk.clip(str(entry.get('action') or entry.get('event') or '?'), 40)}*",
    ]
    if entry.get("session_id"):
        parts.append(bk.code_span(str(entry["session_id"]), 60))
    if entry.get("outcome"):
        parts.append(f"→ {bk.clip(str(entry['outcome']), 40)}")
    line = " ".join(parts)
    if entry.get("detail"):
        line += f": {bk.clip(bk.one_line(str(entry['detail'])), _AUDIT_DETAIL)}"
    return line


def _audit_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            return _audit_time(float(value))
        except ValueError:
            pass
        try:
            return _audit_time(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


EVENT_VERBS = {
    "requested": "asked to",
    "approval_requested": "asked a second person to approve:",
    "approved": "approved:",
    "denied": "denied:",
    "withdrawn": "withdrew the request to",
    "expired": "expired:",
    "cancelled": "cancelled:",
    "executed": "ran",
    "failed": "failed to",
    "refused": "was refused:",
    "recovered": "(after a restart of the bot) resolved:",
}


def render_audit_line(entry: Mapping[str, Any]) -> str:
    """A one-line mrkdwn summary; every value is escaped because metadata is untrusted."""
    actor = entry.get("actor") or "?"
    verb = EVENT_VERBS.get(str(entry.get("event")), str(entry.get("event")))
    parts = [
        f"<@{bk.escape(str(actor))}> {bk.escape(verb)} *{bk.escape(str(entry.get('action', '')))}*"
    ]
    if entry.get("session_id"):
        parts.append(f"`{bk.escape(str(entry['session_id']))}`")
    if entry.get("account"):
        parts.append(f"(account {bk.escape(str(entry['account']))})")
    if entry.get("detail"):
        parts.append(f"— {bk.clip(str(entry['detail']), 500)}")
    if entry.get("duration_ms") is not None:
        parts.append(f"in {entry['duration_ms'] / 1000:.1f} s")
    return " ".join(parts)
