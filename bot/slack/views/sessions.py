"""Session list and session detail messages, plus what each agent can and cannot do.

Pure renderers: dataclasses in, `{"text", "blocks"}` out. Everything from the ngrok API is
escaped and truncated through `bot.blocks`; the list adapts how many sessions it shows so a
page never exceeds 50 blocks or Slack's total text budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bot.ngrok.hosts import DEFAULT_HOST_KEYS
from bot.ngrok.models import TunnelSession
from bot.slack import blocks as bk
from bot.slack.blocks import ButtonContext, ButtonValue
from bot.slack.ids import ACTION_DETAILS, ACTION_EXPORT, ACTION_PAGE, ACTION_SHARE
from bot.slack.views.agent_text import agent_name, session_facts

_SUMMARY_TOP = 5
# One page shows at most this many agents: a table holds 100 rows, a select 100 options.
LIST_PAGE_MAX = 100
Layout = Literal["table", "sections"]
# Where a table cannot go, each row is one section with a Details button: the frame takes
# at most 8 blocks, so 42 rows fit the 50-block limit.
_FIXED_LIST_BLOCKS = 8
_TABLE_COLUMNS = ("#", "Agent", "Session", "Region", "OS", "Version", "Up")
_CELL = 40  # characters of one table cell (escaped)


@dataclass(frozen=True)
class SessionListPage:
    """One page of a listing.

    `query_text` is the filter as text that parses back to the query
    (`SessionQuery.describe()`); Page buttons carry it with a cursor so a click re-runs the
    same query. Cursors are opaque to the renderer: None means no such button, and
    `newer_cursor=""` means "the first page"; `cursor` is this page's own (for Post to
    channel). If the query text is too long for a button value, the page says so and offers
    no Page buttons instead of cutting the query.

    `requested` is the `limit=` asked for; `fleet_online` (everything online in the account)
    and `suggestions` (existing values close to the filters) are set when filters matched
    nothing; `rights_note` is one sentence on how to get the rights to act, empty when the
    user may act here; `shared_by` marks the public copy of a list.
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
    requested: int = 20
    cursor: str = ""
    fleet_online: int | None = None
    suggestions: Sequence[str] = ()
    rights_note: str = ""
    shared_by: str | None = None
    host_keys: tuple[str, ...] = DEFAULT_HOST_KEYS  # metadata keys naming the host


def max_sessions_per_message(layout: Layout = "table") -> int:
    """The most sessions one list message can show by block (or table row) count alone."""
    if layout == "table":
        return LIST_PAGE_MAX
    return bk.MAX_BLOCKS - _FIXED_LIST_BLOCKS


def sessions_that_fit(
    page: SessionListPage, *, now: datetime, context: ButtonContext, layout: Layout = "table"
) -> int:
    """How many of `page.sessions` fit into one message (rows and text); the caller pages
    with this so the cursor for "Older" starts right after the last one shown."""
    return fit_session_list(page, now=now, context=context, layout=layout).shown


@dataclass(frozen=True)
class FittedList:
    """One page with its rows rendered and cut to what fits one message.

    Made by `fit_session_list`, turned into the message by `render_fitted`. A listing only
    knows its Older / Newer cursors once it knows how many rows fit, so the rows and the
    parts of the frame that do not depend on the count are kept here and reused: every row,
    and every button value, is rendered once per message.
    """

    page: SessionListPage
    context: ButtonContext
    shown: int
    head: list[dict[str, Any]]  # header and summary
    filters: str  # the filter line without "showing…"
    fixed_tail: list[dict[str, Any]]  # Export / Post to channel, or the empty-page section
    page_buttons: list[dict[str, Any]]  # for page.older_cursor / page.newer_cursor
    body: list[dict[str, Any]]  # the table and the select, or one section per row


def fit_session_list(
    page: SessionListPage, *, now: datetime, context: ButtonContext, layout: Layout = "table"
) -> FittedList:
    """Renders the page's rows one by one, each once, until the next would break Slack's
    block or text limits. The frame is measured with the page's own cursors and with no
    "showing…" range; 600 characters stay spare for that, for the notes below the list and
    for the page buttons of cursors set only after fitting (see `render_fitted`)."""
    head = [bk.header(_title(page)), _summary_block(page)]
    filters = f"Filters: {bk.code_span(page.query_text, 500)}" if page.query_text else "No filters"
    fixed_tail = _list_buttons(page, context) if page.sessions else [_empty_block(page)]
    page_buttons = _page_buttons(page, page.older_cursor, page.newer_cursor, context)
    frame = [*head, bk.context(filters), *fixed_tail, *page_buttons]
    budget = bk.MAX_MESSAGE_TEXT - bk.text_length(frame) - 600
    header_row = [_cell(c) for c in _TABLE_COLUMNS]
    if layout == "table":
        budget -= sum(len(c["text"]) for c in header_row)
    cells: list[list[dict[str, Any]]] = []
    options: list[dict[str, Any]] = []
    sections: list[dict[str, Any]] = []
    for index, session in enumerate(page.sessions[: max_sessions_per_message(layout)]):
        if layout == "table":
            name = agent_name(session.metadata, page.host_keys)
            row = _table_row(session, index, page, now, name)
            label = _option_label(session, index, page, name)
            budget -= sum(len(c["text"]) for c in row) + len(label)
            if budget < 0:
                break
            cells.append(row)
            options.append(_option(session, label, context))
        else:
            block = _section_row(session, index, page, now, context)
            budget -= bk.text_length([block])
            if budget < 0:
                break
            sections.append(block)
    if cells:
        body = [_table([header_row, *cells]), bk.actions([_select(options)], "pick")]
    else:
        body = sections
    return FittedList(
        page, context, len(cells) or len(sections), head, filters, fixed_tail, page_buttons,
        body,
    )  # fmt: skip


def render_session_list(
    page: SessionListPage, *, now: datetime, context: ButtonContext, layout: Layout = "table"
) -> dict[str, Any]:
    """The list message: as many of `page.sessions` as fit, with the page's cursors."""
    fitted = fit_session_list(page, now=now, context=context, layout=layout)
    return render_fitted(fitted, older_cursor=page.older_cursor, newer_cursor=page.newer_cursor)


def render_fitted(
    fitted: FittedList, *, older_cursor: str | None, newer_cursor: str | None
) -> dict[str, Any]:
    """The message for a fitted page, with the cursors that follow from `fitted.shown`
    (opaque here, as in SessionListPage). Only the page buttons are built again, and only
    when the cursors differ from the ones the page was measured with."""
    page, shown = fitted.page, fitted.shown
    if (older_cursor, newer_cursor) == (page.older_cursor, page.newer_cursor):
        page_buttons = fitted.page_buttons
    else:
        page_buttons = _page_buttons(page, older_cursor, newer_cursor, fitted.context)
    filters = fitted.filters
    if shown:
        filters += f" · showing {page.first_index + 1} to {page.first_index + shown}"
    blocks = [*fitted.head, bk.context(filters), *fitted.body, *fitted.fixed_tail, *page_buttons]
    note = _fewer_note(page, shown)
    if note:
        blocks.append(bk.context(note))
    if page.rights_note and not page.shared_by:
        blocks.append(bk.context(bk.escape(page.rights_note)))
    if page.shared_by:
        blocks.append(bk.context(f"Posted by {bk.user_mention(page.shared_by)}"))
    filters_said = f" matching {page.query_text}" if page.query_text else ""
    if not page.sessions and page.fleet_online is not None:
        fallback = f"No agents matched {page.query_text}; {page.fleet_online} online in all"
    else:
        fallback = f"{page.total_online} ngrok agents online; showing {shown}{filters_said}"
    return bk.message(fallback, blocks)


def _fewer_note(page: SessionListPage, shown: int) -> str:
    """Says when the page shows fewer agents than `limit=` asked for, and why."""
    remaining = page.total_online - page.first_index
    wanted = min(page.requested, remaining)
    if shown >= wanted or not page.sessions:
        return ""
    if shown < len(page.sessions):
        why = "the rest did not fit into one Slack message"
    else:
        why = f"one page holds up to {LIST_PAGE_MAX} agents"
    rest = "use *Older ▶* for the next page, or *Export* for the whole list as CSV"
    return f"Showing {shown} of the {wanted} asked for: {why}; {rest}."


def _title(page: SessionListPage) -> str:
    if not page.sessions and page.fleet_online is not None and page.query_text:
        return "No agents match these filters"
    noun = "agent" if page.total_online == 1 else "agents"
    return f"{page.total_online} ngrok {noun} online"


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
    if parts:
        return bk.context(" · ".join(parts))
    if page.query_text:
        return bk.context("Nothing matched the filters.")
    return bk.context("No agents are connected right now.")


def _counts(counts: Mapping[str, int]) -> str:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{bk.clip(k or '?', 40)} {n}" for k, n in ranked[:_SUMMARY_TOP])
    if len(ranked) > _SUMMARY_TOP:
        text += f", +{len(ranked) - _SUMMARY_TOP} more"
    return text


def _empty_block(page: SessionListPage) -> dict[str, Any]:
    if not page.query_text:
        return bk.section("No agents are online in this ngrok account.", block_id="empty")
    text = f"No agents match {bk.code_span(page.query_text, 500)}."
    if page.fleet_online is not None:
        noun = "agent is" if page.fleet_online == 1 else "agents are"
        text += f" {page.fleet_online} {noun} online in this account."
    if page.suggestions:
        close = ", ".join(bk.code_span(s, 80) for s in page.suggestions[:6])
        text += f"\nClosest existing values: {close}."
    text += "\nRemove some filters, or list everything with `sessions`."
    return bk.section(text, block_id="empty")


def _list_buttons(page: SessionListPage, context: ButtonContext) -> list[dict[str, Any]]:
    """Export (the whole matching list as CSV) and Post to channel (this page, public)."""
    if page.shared_by:
        return []

    def value(cursor: str) -> str:
        return bk.encode_button_value(
            ButtonValue(
                "page", "", context.channel_id, context.thread_ts or "", page.query_text, cursor
            ),
            key=context.key,
        )

    try:
        elements = [
            bk.button("Export CSV", ACTION_EXPORT, value("")),
            bk.button("Post to channel", ACTION_SHARE, value(page.cursor)),
        ]
    except ValueError:
        return []  # the page buttons below already say that the query is too long
    return [bk.actions(elements, "list_actions")]


def _page_buttons(
    page: SessionListPage, older: str | None, newer: str | None, context: ButtonContext
) -> list[dict[str, Any]]:
    """One actions block per direction: both buttons share ACTION_PAGE, and Slack wants
    action ids unique within a block."""
    result = []
    for label, cursor, name in (("◀ Newer", newer, "newer"), ("Older ▶", older, "older")):
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


def _cell(text: str) -> dict[str, Any]:
    """A raw_text table cell from untrusted text: escaped like every other text, cut."""
    return {"type": "raw_text", "text": bk.clip(bk.one_line(text), _CELL) or "-"}


def _table_row(
    session: TunnelSession, index: int, page: SessionListPage, now: datetime, name: str | None
) -> list[dict[str, Any]]:
    """One agent's cells; `name` is its host name, read once per row by the caller."""
    number = page.first_index + index + 1
    version = session.agent_version or ("ssh" if session.is_ssh else "?")
    return [
        _cell(str(number)),
        _cell(name or "-"),
        _cell(session.id),
        _cell(session.region or "?"),
        _cell(session.os or ("ssh" if session.is_ssh else "?")),
        _cell(version),
        _cell(bk.format_duration(session.uptime(now))),
    ]


def _table(rows: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Slack's table block: a header row and one row per agent (raw_text cells)."""
    return {
        "type": "table",
        "block_id": "agents",
        "column_settings": [{"is_wrapped": False}, {"is_wrapped": True}],
        "rows": rows,
    }


def _option_label(
    session: TunnelSession, index: int, page: SessionListPage, name: str | None
) -> str:
    number = page.first_index + index + 1
    return f"{number}. {name} ({session.id[-8:]})" if name else f"{number}. {session.id}"


def _option(session: TunnelSession, label: str, context: ButtonContext) -> dict[str, Any]:
    """One agent in the select: its label and its sealed Details value."""
    return {
        "text": bk.plain(label, bk.MAX_OPTION_TEXT),
        "value": bk.button_value_for("details", session.id, context, bk.MAX_OPTION_VALUE),
    }


def _select(options: list[dict[str, Any]]) -> dict[str, Any]:
    """One select listing the agents shown: choosing one opens its details and actions."""
    return {
        "type": "static_select",
        "action_id": ACTION_DETAILS,
        "placeholder": {"type": "plain_text", "text": "Open an agent…"},
        "options": options,
    }


def _section_row(
    session: TunnelSession, index: int, page: SessionListPage, now: datetime,
    context: ButtonContext,
) -> dict[str, Any]:  # fmt: skip
    """The fallback where a table cannot go: one section per agent, Details alongside."""
    name = agent_name(session.metadata, page.host_keys)
    lead = f"*{bk.clip(name, 60)}* " if name else ""
    text = (
        f"{page.first_index + index + 1}. {lead}{bk.code_span(session.id, 60)}  "
        f"{session_facts(session)} · up {bk.format_duration(session.uptime(now))}"
    )
    details = bk.button(
        "Details", ACTION_DETAILS, bk.button_value_for("details", session.id, context)
    )
    return bk.section(text, accessory=details, block_id=f"row{index}")


# --- the detail view -----------------------------------------------------------------------
