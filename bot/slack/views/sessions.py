"""Session list and session detail messages, plus what each agent can and cannot do.

Pure renderers: dataclasses in, `{"text", "blocks"}` out. Everything from the ngrok API is
escaped and truncated through `bot.blocks`; the list adapts how many sessions it shows so a
page never exceeds 50 blocks or Slack's total text budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.ngrok.hosts import DEFAULT_HOST_KEYS
from bot.ngrok.models import (
    TunnelSession,
    supported_actions,
)
from bot.slack import blocks as bk
from bot.slack.blocks import ButtonContext, ButtonValue
from bot.slack.ids import ACTION_DETAILS, ACTION_PAGE, ACTION_REQUEST
from bot.slack.views.agent_text import OP_LABEL, session_facts
from bot.slack.views.targets import agent_title

_ROW_METADATA = 240
_SUMMARY_TOP = 5
# Header, summary, filter line, two page-button rows and one note; each session takes two.
_FIXED_LIST_BLOCKS = 6


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
    host_keys: tuple[str, ...] = DEFAULT_HOST_KEYS  # metadata keys naming the host


def max_sessions_per_message() -> int:
    """The most sessions one list message can show by block count alone."""
    return (bk.MAX_BLOCKS - _FIXED_LIST_BLOCKS) // 2


def sessions_that_fit(page: SessionListPage, *, now: datetime, context: ButtonContext) -> int:
    """How many of `page.sessions` fit into one message (blocks and text); the caller pages
    with this so the cursor for "Older" starts right after the last one shown."""
    budget = bk.MAX_MESSAGE_TEXT - bk.text_length(_list_frame(page, context, shown=0)) - 400
    count = 0
    for session in page.sessions[: max_sessions_per_message()]:
        budget -= bk.text_length(_session_row(session, count, now, context, page.host_keys))
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
        b
        for i, s in enumerate(page.sessions[:shown])
        for b in _session_row(s, i, now, context, page.host_keys)
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
    session: TunnelSession,
    index: int,
    now: datetime,
    context: ButtonContext,
    host_keys: Sequence[str] = DEFAULT_HOST_KEYS,
) -> list[dict[str, Any]]:
    text = (
        f"{agent_title(session, host_keys)}  {session_facts(session)}"
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
    ops = supported_actions(session)
    if ops == ("stop",):
        value = bk.button_value_for("stop", session.id, context)
        return bk.button("Stop…", ACTION_REQUEST, value, style="danger")
    options = [
        (f"{OP_LABEL[op]}…", bk.button_value_for(op, session.id, context, bk.MAX_OPTION_VALUE))
        for op in ops
    ]
    return bk.overflow(ACTION_REQUEST, options)


# --- the detail view -----------------------------------------------------------------------
