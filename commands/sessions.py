"""`sessions [filters]`: the fleet as a paged list, and its Older / Newer, Export and Post
to channel buttons.

One scan follows every page of the API's answer to the exact (CEL) filters and applies the
substring and version filters on the way, so the header can count everything that matched.
Cursors are session ids: "<id" shows what is older than it, ">id" what is newer. They stay
valid while agents come and go, because ids are ordered by creation time.
"""

from __future__ import annotations

import difflib
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from slack_sdk.errors import SlackApiError

from bot.deps import Deps
from bot.ngrok.errors import NgrokError
from bot.ngrok.hosts import DEFAULT_HOST_KEYS
from bot.ngrok.models import TunnelSession
from bot.policy import may_view, rights_note
from bot.slack.blocks import ButtonContext
from bot.slack.invocation import Invocation
from bot.slack.views.agent_text import agent_name
from bot.slack.views.errors import render_error
from bot.slack.views.export import export_comment, render_sessions_csv
from bot.slack.views.progress import render_scan_progress, render_working
from bot.slack.views.sessions import (
    LIST_PAGE_MAX,
    SessionListPage,
    fit_session_list,
    render_fitted,
)
from commands.explain import explain
from commands.grammar import ListSessions, ParseError, SessionQuery, parse_command

PAGE_SIZE = 100  # sessions per ngrok API page


def scan_sessions(
    deps: Deps,
    channel_id: str,
    query: SessionQuery,
    *,
    progress: Callable[[int, int | None], None] | None = None,
) -> list[TunnelSession]:
    """Every online session matching the query, newest first (raises NgrokError); scans
    are shared through deps.fleet, so a burst of identical lists costs one scan.
    `progress(page, estimated_pages)` hears of each API page the scan fetches."""
    bound = deps.ngrok_for(channel_id)
    assert bound is not None  # may_view refuses channels without an account
    account, client = bound
    cel = query.api_filter.to_cel()
    last = deps.fleet.last_size(account.name, cel)
    estimate = max(1, math.ceil(last / PAGE_SIZE)) if last else None

    def on_page(number: int) -> None:
        if progress is not None:
            progress(number, estimate)

    fleet = deps.fleet.get(
        account.name,
        cel,
        lambda: list(client.iter_sessions(filter=cel, page_size=PAGE_SIZE, on_page=on_page)),
    )
    if not query.filters_locally:
        return fleet  # a copy already; a plain `sessions` needs no pass over 200 sessions
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


def render_page(
    matched: list[TunnelSession],
    query: SessionQuery,
    cursor: str,
    *,
    context: ButtonContext,
    rights: str = "",
    shared_by: str | None = None,
    host_keys: Sequence[str] = DEFAULT_HOST_KEYS,
    fleet_online: int | None = None,
    suggestions: Sequence[str] = (),
) -> dict[str, object]:
    """The list message for one page: as many sessions as fit one Slack message, with the
    Older / Newer cursors right after and before the ones shown. Fitting renders the rows,
    and the message reuses them, so each row is rendered (and its value sealed) once."""
    window, start = _window(matched, cursor, min(query.limit, LIST_PAGE_MAX))
    now = datetime.now(UTC)
    page = SessionListPage(
        sessions=window,
        total_online=len(matched),
        by_region=Counter(s.region or "unknown" for s in matched),
        by_os=Counter(s.os or _unreported(s) for s in matched),
        by_version=Counter(s.agent_version or _unreported(s) for s in matched),
        query_text=query.describe(),
        first_index=start,
        requested=query.limit,
        cursor=cursor,
        fleet_online=fleet_online,
        suggestions=suggestions,
        rights_note=rights,
        shared_by=shared_by,
        host_keys=tuple(host_keys),
    )
    fitted = fit_session_list(page, now=now, context=context)
    shown = window[: fitted.shown]
    end = start + len(shown)
    return render_fitted(
        fitted,
        older_cursor=f"<{shown[-1].id}" if shown and end < len(matched) else None,
        newer_cursor=f">{shown[0].id}" if shown and start > 0 else None,
    )


def _close(wanted: Iterable[str], existing: Counter[str], key: str) -> list[str]:
    """Existing values nearest to what was asked for (difflib), else the most common."""
    values = [v for v in existing if v]
    found: list[str] = []
    for value in wanted:
        found += difflib.get_close_matches(value.lower(), values, n=3, cutoff=0.4)
    if not found:
        found = [v for v, _ in existing.most_common(3) if v]
    return [f"{key}={v}" if key else v for v in dict.fromkeys(found)]


def suggest(query: SessionQuery, fleet: list[TunnelSession]) -> list[str]:
    """Filter values that exist in the fleet, close to the ones that matched nothing."""
    f = query.api_filter
    hints: list[str] = []
    for key, wanted, existing in (
        ("region", f.regions, Counter(s.region for s in fleet)),
        ("os", f.oses, Counter(s.os for s in fleet)),
        ("version", f.agent_versions, Counter(s.agent_version for s in fleet)),
    ):
        if wanted:
            hints += _close(wanted, existing, key)
    words = [*query.words, *query.meta_contains]
    if words:
        hosts = Counter(agent_name(s.metadata) or "" for s in fleet)
        hints += _close([w[:200] for w in words], hosts, "")
    if query.version_bounds and not f.agent_versions:
        hints += _close([], Counter(s.agent_version for s in fleet), "version")
    return hints[:6]


def render_list(
    inv: Invocation, deps: Deps, query: SessionQuery, cursor: str, *, shared: bool = False
) -> dict[str, object] | None:
    """The list message for this user here, or None after telling them why not."""
    roles = deps.roles(inv.user_id)
    refusal = may_view(deps.config, roles, inv.channel_id)
    if not refusal.allowed:
        inv.private(render_error(refusal.reason))
        return None
    context = ButtonContext(inv.channel_id, inv.thread_ts, deps.settings.approval_secret)

    def progress(page: int, estimate: int | None) -> None:
        inv.progress(render_scan_progress(page, estimate))

    try:
        matched = scan_sessions(deps, inv.channel_id, query, progress=progress)
        fleet_online, hints = None, []
        if not matched and query.describe():
            fleet = scan_sessions(deps, inv.channel_id, SessionQuery())
            fleet_online, hints = len(fleet), suggest(query, fleet)
    except NgrokError as error:
        inv.private(render_error(explain(error)))
        return None
    return render_page(
        matched, query, cursor, context=context,
        rights=rights_note(deps.config, roles, inv.channel_id),
        shared_by=inv.user_id if shared else None, host_keys=deps.config.host_keys,
        fleet_online=fleet_online, suggestions=hints,
    )  # fmt: skip


def list_sessions(inv: Invocation, deps: Deps, query: SessionQuery, *, cursor: str = "") -> None:
    """Renders one page; a page click replaces the list it came from."""
    message = render_list(inv, deps, query, cursor)
    if message is not None:
        inv.answer(message, in_place=True)


def _query_of(inv: Invocation, query_text: str) -> SessionQuery | None:
    try:
        command = parse_command(f"sessions {query_text}")
    except ParseError as error:
        inv.private(render_error(error.message, error.usage))
        return None
    assert isinstance(command, ListSessions)
    return command.query


def turn_page(inv: Invocation, deps: Deps, query_text: str, cursor: str) -> None:
    """An Older / Newer click: the same query from the button, from another cursor."""
    query = _query_of(inv, query_text)
    if query is not None:
        inv.working(render_working("Loading the page…"))
        list_sessions(inv, deps, query, cursor=cursor)


def share_list(inv: Invocation, deps: Deps, query_text: str, cursor: str) -> None:
    """Post to channel: the same page, re-rendered for everyone in the channel or thread."""
    query = _query_of(inv, query_text)
    if query is None:
        return
    message = render_list(inv, deps, query, cursor, shared=True)
    if message is not None:
        inv.public(message)


def export_sessions(inv: Invocation, deps: Deps, query_text: str) -> None:
    """Export: every matching session as a CSV file in the channel or thread."""
    query = _query_of(inv, query_text)
    if query is None:
        return
    refusal = may_view(deps.config, deps.roles(inv.user_id), inv.channel_id)
    if not refusal.allowed:
        inv.private(render_error(refusal.reason))
        return
    try:
        matched = scan_sessions(deps, inv.channel_id, query)
    except NgrokError as error:
        inv.private(render_error(explain(error)))
        return
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    try:
        inv.client.files_upload_v2(
            channel=inv.channel_id,
            thread_ts=inv.thread_ts,
            content=render_sessions_csv(matched),
            filename=f"ngrok-agents-{stamp}.csv",
            title=f"ngrok agents {stamp} UTC",
            initial_comment=export_comment(inv.user_id, len(matched), "agents", query_text),
        )
    except SlackApiError as error:
        code = error.response.get("error")
        inv.private(
            render_error(
                f"Slack refused the CSV file ({code}); invite me to this channel with "
                "`/invite @ngrok-ops`, or check that the app has the files:write scope."
            )
        )
