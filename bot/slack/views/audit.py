"""`audit`: recent records for operators and approvers, and the audit channel's line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.slack import blocks as bk
from bot.slack.views.agent_text import agent_name

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
    """`<date> · <sentence>`: when first, then who did what to which agent, and how it ended."""
    when = _audit_time(entry.get("ts"))
    return f"{bk.date_token(when) if when else 'At an unknown time'} · {audit_sentence(entry)}"


_PAST = {"restart": "restarted", "stop": "stopped", "update": "started the update of"}


def _agent(entry: Mapping[str, Any]) -> str:
    """The agent by host name first (from its metadata), then its session id."""
    sid = entry.get("session_id")
    host = agent_name(str(entry.get("metadata") or ""))
    ident = bk.code_span(str(sid), 60) if sid else ""
    if host and ident:
        return f"*{bk.clip(bk.one_line(host), 60)}* ({ident})"
    if host:
        return f"*{bk.clip(bk.one_line(host), 60)}*"
    return f"agent {ident}" if ident else "an agent"


_RECOVERED = {"ok": "it took effect", "unknown": "outcome unknown"}


def audit_sentence(entry: Mapping[str, Any]) -> str:
    """One record as a sentence of escaped mrkdwn: who, what, which agent, how it ended."""
    event = str(entry.get("event") or entry.get("outcome") or "")
    op = bk.clip(str(entry.get("action") or "act on"), 20)
    noun = bk.clip(str(entry.get("action") or "action"), 20)
    who = bk.user_mention(str(entry.get("actor") or "")) if entry.get("actor") else "The bot"
    requester = entry.get("requester")
    by = (
        f" (asked by {bk.user_mention(str(requester))})"
        if requester and requester != entry.get("actor")
        else ""
    )
    asker = bk.user_mention(str(requester)) if requester else who
    agent = _agent(entry)
    detail = bk.clip(bk.one_line(str(entry.get("detail") or "")), _AUDIT_DETAIL)
    reason = f" Reason: {detail}" if detail else ""
    took = (
        f" in {bk.format_elapsed(entry['duration_ms'] / 1000)}"
        if isinstance(entry.get("duration_ms"), int | float)
        else ""
    )
    follow = " to finish the update" if entry.get("follows") == "update" else ""
    sentences = {
        "requested": f"{who} asked to {op} {agent}.",
        "approval_requested": f"{who} asked a second person to approve a {noun} of {agent}.",
        "approved": f"{who} approved the {noun} of {agent}{by}.",
        "denied": f"{who} denied the {noun} of {agent}{by}; nothing was changed.{reason}",
        "withdrawn": f"{who} withdrew the request to {op} {agent}; nothing was changed.{reason}",
        "expired": f"{asker}'s request to {op} {agent} expired before anyone approved it; "
        "nothing was changed.",
        "cancelled": f"{who} cancelled the {noun} of {agent}; nothing was changed.",
        "executed": f"{who} {_PAST.get(op, op)} {agent}{follow}{by}: done{took}.",
        "failed": f"{who} tried to {op} {agent}{follow}{by}: failed{took}.{reason}",
        "refused": f"{who} was refused a {noun} of {agent}.{reason}",
        "replanned": f"{who} changed the plan of the {noun} run "
        f"{bk.code_span(str(entry.get('run_id') or '?'), 40)}: {detail}.",
        "recovered": f"After a restart of the bot, the {noun} of {agent}{by} was resolved: "
        f"{_RECOVERED.get(str(entry.get('outcome')), 'outcome unknown')}.{reason}",
    }
    if event in sentences:
        return sentences[event]
    outcome = bk.clip(str(entry.get("outcome") or event or "recorded"), 40)
    return f"{who}: {bk.clip(event, 40)} {op} {agent} ({outcome}).{reason}"


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


def render_audit_line(entry: Mapping[str, Any]) -> str:
    """The audit channel's line: the same sentence, with the account when there is one."""
    line = audit_sentence(entry)
    if entry.get("account"):
        line += f" (account {bk.clip(str(entry['account']), 60)})"
    return line
