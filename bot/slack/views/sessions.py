"""Session list and session detail messages, plus what each agent can and cannot do.

Pure renderers: dataclasses in, `{"text", "blocks"}` out. Everything from the ngrok API is
escaped and truncated through `bot.blocks`; the list adapts how many sessions it shows so a
page never exceeds 50 blocks or Slack's total text budget.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.ngrok.models import Endpoint, TunnelSession
from bot.slack import blocks as bk
from bot.slack.blocks import ButtonContext, ButtonValue, Op
from bot.slack.ids import ACTION_DETAILS, ACTION_PAGE, ACTION_REQUEST

OP_LABEL: dict[Op, str] = {"restart": "Restart", "update": "Update", "stop": "Stop"}
OP_EFFECT: dict[Op, str] = {
    "restart": "The agent restarts and comes back with a *new* session id; this id stops working.",
    "stop": "The agent exits and does not come back unless a supervisor (systemd, a Windows "
    "service) starts it again.",
    "update": "The agent installs the latest minor version, which needs a restart at least 10 s "
    "later; the bot does that restart for you, and the agent comes back with a new session id.",
}
_FIELD_LIMIT = 60  # region, OS, version, IP, transport: short values, cut if garbled
_ROW_METADATA = 240
_SUMMARY_TOP = 5
# Header, summary, filter line, two page-button rows and one note; each session takes two.
_FIXED_LIST_BLOCKS = 6


def unavailable_reason(op: Op, session: TunnelSession) -> str | None:
    """Why `op` cannot work on this agent, as one sentence; None when it can."""
    if session.is_ssh and op == "restart":
        return (
            "Restart is not available: SSH reverse-tunnel sessions cannot be restarted; stop it "
            "and reconnect over SSH."
        )
    if session.is_ssh and op == "update":
        return "Update is not available: SSH reverse-tunnel sessions have no ngrok agent to update."
    if session.is_windows and op == "restart":
        return (
            "Restart is not available: Windows agents cannot restart themselves; stop it and let "
            "the service manager start it again."
        )
    return None


def available_ops(session: TunnelSession) -> tuple[Op, ...]:
    return tuple(op for op in bk.OPS if unavailable_reason(op, session) is None)


def session_facts(session: TunnelSession) -> str:
    """`us · linux · agent 3.22.1 · 10.0.0.1`, escaped; `?` for what the API left out."""
    parts = [
        bk.clip(session.region or "?", _FIELD_LIMIT),
        bk.clip(session.os or "?", _FIELD_LIMIT),
        "agent " + bk.clip(session.agent_version or "?", _FIELD_LIMIT),
        bk.clip(session.ip or "?", _FIELD_LIMIT),
    ]
    if session.is_ssh:
        parts.append("ssh")
    return " · ".join(parts)


def session_summary(session: TunnelSession, metadata_limit: int = 200) -> str:
    """Id, facts and one line of metadata, for prompts and records."""
    text = f"{bk.code_span(session.id, 60)}  {session_facts(session)}"
    if session.metadata:
        text += f"\n{bk.code_span(session.metadata, metadata_limit)}"
    return text


# --- the list ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionListPage:
    """One page of a listing.

    `query_text` is the filter as text that parses back to the query
    (`SessionQuery.describe()`); Page buttons carry it with a cursor so a click re-runs the
    same query. Cursors are opaque to the renderer: None means no such button, and
    `newer_cursor=""` means "the first page". If the query text is too long for a button
    value, the page says so and offers no Page buttons instead of cutting the query.
    """

    sessions: Sequence[TunnelSession]
    total_online: int
    by_region: Mapping[str, int] = field(default_factory=dict)
    by_os: Mapping[str, int] = field(default_factory=dict)
    by_version: Mapping[str, int] = field(default_factory=dict)
    query_text: str = ""
    older_cursor: str | None = None
    newer_cursor: str | None = None
    first_index: int = 0


def max_sessions_per_message() -> int:
    """The most sessions one list message can show by block count alone."""
    return (bk.MAX_BLOCKS - _FIXED_LIST_BLOCKS) // 2


def sessions_that_fit(page: SessionListPage, *, now: datetime, context: ButtonContext) -> int:
    """How many of `page.sessions` fit into one message (blocks and text); the caller pages
    with this so the cursor for "Older" starts right after the last one shown."""
    budget = bk.MAX_MESSAGE_TEXT - bk.text_length(_list_frame(page, context, shown=0)) - 400
    count = 0
    for session in page.sessions[: max_sessions_per_message()]:
        budget -= bk.text_length(_session_row(session, count, now, context))
        if budget < 0:
            break
        count += 1
    return count


def render_session_list(
    page: SessionListPage, *, now: datetime, context: ButtonContext
) -> dict[str, Any]:
    shown = sessions_that_fit(page, now=now, context=context)
    frame = _list_frame(page, context, shown)
    rows = [
        b for i, s in enumerate(page.sessions[:shown]) for b in _session_row(s, i, now, context)
    ]
    blocks = frame[:3] + rows + frame[3:]
    left_out = len(page.sessions) - shown
    if left_out:
        blocks.append(
            bk.context(
                f"{left_out} more session(s) on this page did not fit into one Slack message; "
                "narrow the filters to see them."
            )
        )
    filters = f" matching {page.query_text}" if page.query_text else ""
    fallback = f"{page.total_online} ngrok agents online; showing {shown}{filters}"
    return bk.message(fallback, blocks)


def _list_frame(page: SessionListPage, context: ButtonContext, shown: int) -> list[dict[str, Any]]:
    """Header, summary and filter line (first three), then the footer blocks."""
    noun = "agent" if page.total_online == 1 else "agents"
    head = [bk.header(f"{page.total_online} ngrok {noun} online"), _summary_block(page)]
    filters = f"Filters: {bk.code_span(page.query_text, 500)}" if page.query_text else "No filters"
    if shown:
        first = page.first_index + 1
        filters += f" · showing {first} to {page.first_index + shown}"
    head.append(bk.context(filters))
    if not page.sessions:  # local filters may empty a page that still has older ones
        return [*head, _empty_block(page), *_page_buttons(page, context)]
    return head + _page_buttons(page, context)


def _summary_block(page: SessionListPage) -> dict[str, Any]:
    parts = [
        f"*{label}:* {_counts(counts)}"
        for label, counts in (
            ("Regions", page.by_region),
            ("OS", page.by_os),
            ("Versions", page.by_version),
        )
        if counts
    ]
    return bk.context(" · ".join(parts) if parts else "No agents are connected right now.")


def _counts(counts: Mapping[str, int]) -> str:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{bk.clip(k or '?', 40)} {n}" for k, n in ranked[:_SUMMARY_TOP])
    if len(ranked) > _SUMMARY_TOP:
        text += f", +{len(ranked) - _SUMMARY_TOP} more"
    return text


def _empty_block(page: SessionListPage) -> dict[str, Any]:
    if page.query_text:
        text = (
            f"No sessions match {bk.code_span(page.query_text, 500)}. "
            "Remove some filters, or list everything with `sessions`."
        )
    else:
        text = "No agents are online in this ngrok account."
    return bk.section(text, block_id="empty")


def _page_buttons(page: SessionListPage, context: ButtonContext) -> list[dict[str, Any]]:
    """One actions block per direction: both buttons share ACTION_PAGE, and Slack wants
    action ids unique within a block."""
    result = []
    for label, cursor, name in (
        ("◀ Newer", page.newer_cursor, "newer"),
        ("Older ▶", page.older_cursor, "older"),
    ):
        if cursor is None:
            continue
        value = ButtonValue(
            "page", "", context.channel_id, context.thread_ts or "", page.query_text, cursor
        )
        try:
            encoded = bk.encode_button_value(value, key=context.key)
        except ValueError:
            return [
                bk.context(
                    "These filters are too long to carry in a Page button; shorten them or "
                    "raise `limit=` to see more sessions."
                )
            ]
        result.append(bk.actions([bk.button(label, ACTION_PAGE, encoded)], f"page_{name}"))
    return result


def _session_row(
    session: TunnelSession, index: int, now: datetime, context: ButtonContext
) -> list[dict[str, Any]]:
    text = (
        f"{bk.code_span(session.id, 60)}  {session_facts(session)}"
        f" · up {bk.format_duration(session.uptime(now))}"
    )
    if session.metadata:
        text += f"\n{bk.code_span(session.metadata, _ROW_METADATA)}"
    details = bk.button(
        "Details", ACTION_DETAILS, bk.button_value_for("details", session.id, context)
    )
    return [
        bk.section(text, block_id=f"row{index}"),
        bk.actions([details, _request_control(session, context)], f"row{index}_actions"),
    ]


def _request_control(session: TunnelSession, context: ButtonContext) -> dict[str, Any]:
    """A Stop button when that is all the agent allows, else one overflow menu: three
    buttons with ACTION_REQUEST in one block would repeat an action id."""
    ops = available_ops(session)
    if ops == ("stop",):
        value = bk.button_value_for("stop", session.id, context)
        return bk.button("Stop…", ACTION_REQUEST, value, style="danger")
    options = [
        (f"{OP_LABEL[op]}…", bk.button_value_for(op, session.id, context, bk.MAX_OPTION_VALUE))
        for op in ops
    ]
    return bk.overflow(ACTION_REQUEST, options)


# --- the detail view -----------------------------------------------------------------------


def render_session_detail(
    session: TunnelSession,
    endpoints: Sequence[Endpoint],
    *,
    now: datetime,
    context: ButtonContext,
) -> dict[str, Any]:
    top = [bk.header(f"ngrok agent {session.id}"), _fact_fields(session, now)]
    bottom = [_endpoints_block(endpoints), *_op_blocks(session, context)]
    bottom.append(bk.context("Every action asks for approval before it runs."))
    budget = (
        bk.MAX_MESSAGE_TEXT - bk.text_length(top) - bk.text_length(bottom) - 200
    )  # room for the metadata heading and the code-block fences
    slots = bk.MAX_BLOCKS - len(top) - len(bottom)
    blocks = top + _metadata_blocks(session.metadata, budget, slots) + bottom
    facts = " · ".join(filter(None, (session.region, session.os, session.agent_version)))
    return bk.message(f"ngrok agent {session.id}: {facts or 'details'}", blocks)


def _fact_fields(session: TunnelSession, now: datetime) -> dict[str, Any]:
    if session.started_at is not None:
        started = (
            f"{bk.date_token(session.started_at)} (up {bk.format_duration(session.uptime(now))})"
        )
    else:
        started = "unknown"
    facts = [
        ("Session", bk.code_span(session.id, 60)),
        ("Credential", bk.code_span(session.credential.id, 60) if session.credential.id else "-"),
        ("Region", bk.clip(session.region or "-", _FIELD_LIMIT)),
        ("OS", bk.clip(session.os or "-", _FIELD_LIMIT)),
        ("Agent version", bk.clip(session.agent_version or "-", _FIELD_LIMIT)),
        ("Transport", bk.clip(session.transport or "-", _FIELD_LIMIT)),
        ("IP", bk.clip(session.ip or "-", _FIELD_LIMIT)),
        ("Started", started),
    ]
    return bk.section("*Session details*", fields=[f"*{k}*\n{v}" for k, v in facts])


def _metadata_blocks(metadata: str, budget: int, slots: int) -> list[dict[str, Any]]:
    """The metadata in full, as pretty JSON when it parses, over as many sections as it
    needs; cut with a visible note only if it would not fit the message at all."""
    if not metadata:
        return [
            bk.section(
                "*Metadata:* none. Set `agent.metadata` in the agent config so the agent can be "
                "found again after a restart gives it a new session id."
            )
        ]
    text = _pretty_json(metadata)
    escaped = bk.escape(bk.neutralise_backticks(text))
    if len(escaped) > budget and text != metadata:
        escaped = bk.escape(bk.neutralise_backticks(metadata))
    note = ""
    if len(escaped) > budget:
        escaped = bk.truncate_escaped(escaped, max(budget, 500))
        note = f" (cut to fit one Slack message; {len(metadata)} characters in all)"
    chunk = bk.MAX_SECTION_TEXT - len(bk.code_block(""))
    chunks = bk.split_escaped(escaped, chunk)[: max(slots - 1, 1)]
    heading = bk.section(f"*Metadata*{note}")
    return [heading, *(bk.section(bk.code_block(c)) for c in chunks)]


def _pretty_json(metadata: str) -> str:
    try:
        parsed = json.loads(metadata)
    except ValueError:
        return metadata
    if not isinstance(parsed, dict | list):
        return metadata
    return json.dumps(parsed, indent=2, ensure_ascii=False)


def _endpoints_block(endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    if not endpoints:
        return bk.section("*Endpoints:* none reported for this session.")
    lines: list[str] = []
    used = 0
    for i, endpoint in enumerate(endpoints):
        line = f"• {bk.code_span(endpoint.url or endpoint.id or '?', 300)}"
        if endpoint.upstream_url:
            line += f" → {bk.code_span(endpoint.upstream_url, 300)}"
        if used + len(line) > 2000:
            lines.append(f"…and {len(endpoints) - i} more")
            break
        lines.append(line)
        used += len(line) + 1
    return bk.section(f"*Endpoints ({len(endpoints)})*\n" + "\n".join(lines))


def _op_blocks(session: TunnelSession, context: ButtonContext) -> list[dict[str, Any]]:
    """One section per action: the button with what it does, or why it is not offered.
    Separate blocks keep the ACTION_REQUEST ids unique within each block."""
    result = []
    for op in bk.OPS:
        reason = unavailable_reason(op, session)
        if reason:
            result.append(bk.section(reason, block_id=f"op_{op}"))
            continue
        style = "danger" if op == "stop" else None
        value = bk.button_value_for(op, session.id, context)
        control = bk.button(f"{OP_LABEL[op]}…", ACTION_REQUEST, value, style=style)
        text = f"*{OP_LABEL[op]}:* {OP_EFFECT[op]}"
        result.append(bk.section(text, accessory=control, block_id=f"op_{op}"))
    return result
