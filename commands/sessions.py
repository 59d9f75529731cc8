"""`sessions [filters]`: the fleet as a paged list, and its Older / Newer buttons.

One scan follows every page of the API's answer to the exact (CEL) filters and applies the
substring and version filters on the way, so the header can count everything that matched.
Cursors are session ids: "<id" shows what is older than it, ">id" what is newer. They stay
valid while agents come and go, because ids are ordered by creation time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from bot.deps import Deps
from bot.ngrok.errors import NgrokError
from bot.ngrok.hosts import DEFAULT_HOST_KEYS
from bot.ngrok.models import TunnelSession
from bot.policy import may_view
from bot.slack.blocks import ButtonContext
from bot.slack.invocation import Invocation
from bot.slack.views.errors import render_error
from bot.slack.views.sessions import SessionListPage, render_session_list, sessions_that_fit
from commands.explain import explain
from commands.grammar import ListSessions, ParseError, SessionQuery, parse_command


def scan_sessions(deps: Deps, channel_id: str, query: SessionQuery) -> list[TunnelSession]:
    """Every online session matching the query, newest first (raises NgrokError); scans
    are shared through deps.fleet, so a burst of identical lists costs one scan."""
    bound = deps.ngrok_for(channel_id)
    assert bound is not None  # may_view refuses channels without an account
    account, client = bound
    cel = query.api_filter.to_cel()
    fleet = deps.fleet.get(account.name, cel, lambda: list(client.iter_sessions(filter=cel)))
    return [s for s in fleet if query.matches_locally(s)]


def _unreported(session: TunnelSession) -> str:
    """SSH sessions have no agent, hence no OS or agent version; say so in the summary."""
    return "ssh" if session.is_ssh else "unknown"


def _window(
    matched: list[TunnelSession], cursor: str, size: int
) -> tuple[list[TunnelSession], int]:
    """The sessions of one page and the index of its first one."""
    if cursor.startswith(">"):
        newer = [s for s in matched if s.id > cursor[1:]]
        start = max(len(newer) - size, 0)
        return newer[start:], start
    if cursor.startswith("<"):
        start = next((i for i, s in enumerate(matched) if s.id < cursor[1:]), len(matched))
        return matched[start : start + size], start
    return matched[:size], 0


def build_page(
    matched: list[TunnelSession],
    query: SessionQuery,
    cursor: str,
    *,
    context: ButtonContext,
    host_keys: Sequence[str] = DEFAULT_HOST_KEYS,
) -> SessionListPage:
    """Chooses the sessions shown so that the page fits one Slack message."""
    window, start = _window(matched, cursor, query.limit)
    page = SessionListPage(
        sessions=window,
        total_online=len(matched),
        by_region=Counter(s.region or "unknown" for s in matched),
        by_os=Counter(s.os or _unreported(s) for s in matched),
        by_version=Counter(s.agent_version or _unreported(s) for s in matched),
        query_text=query.describe(),
        first_index=start,
        host_keys=tuple(host_keys),
    )
    shown = sessions_that_fit(page, now=datetime.now(UTC), context=context)
    window = window[:shown]
    end = start + len(window)
    return replace(
        page,
        sessions=window,
        older_cursor=f"<{window[-1].id}" if window and end < len(matched) else None,
        newer_cursor=f">{window[0].id}" if window and start > 0 else None,
    )


def list_sessions(inv: Invocation, deps: Deps, query: SessionQuery, *, cursor: str = "") -> None:
    """Renders one page; a page click replaces the list it came from."""
    refusal = may_view(deps.config, deps.roles(inv.user_id), inv.channel_id)
    if not refusal.allowed:
        inv.private(render_error(refusal.reason))
        return
    context = ButtonContext(inv.channel_id, inv.thread_ts, deps.settings.approval_secret)
    try:
        matched = scan_sessions(deps, inv.channel_id, query)
    except NgrokError as error:
        inv.private(render_error(explain(error)))
        return
    message = render_session_list(
        build_page(matched, query, cursor, context=context, host_keys=deps.config.host_keys),
        now=datetime.now(UTC),
        context=context,
    )
    inv.answer(message, in_place=True)


def turn_page(inv: Invocation, deps: Deps, query_text: str, cursor: str) -> None:
    """An Older / Newer click: the same query from the button, from another cursor."""
    try:
        command = parse_command(f"sessions {query_text}")
    except ParseError as error:
        inv.private(render_error(error.message, error.usage))
        return
    assert isinstance(command, ListSessions)
    list_sessions(inv, deps, command.query, cursor=cursor)
