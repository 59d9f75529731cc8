"""Finding a session through the account bound to a channel, by session id or host name,
with the failure explained: several agents with that host (pick one), none (the nearest
names), or an old id whose agent restarted under a new one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.deps import Deps
from bot.ngrok.client import NgrokClient
from bot.ngrok.errors import NgrokError, NotFound
from bot.ngrok.hosts import nearest_names, sessions_named
from bot.ngrok.models import SESSION_ID_RE, Action, TunnelSession
from bot.settings.bot_config import Account
from bot.slack.blocks import ButtonContext
from bot.slack.views.errors import render_error
from bot.slack.views.targets import (
    render_host_choices,
    render_never_seen,
    render_no_host,
    render_restarted_as,
)
from bot.state.successors import successor_of
from commands.explain import explain
from commands.fleet_plan import newest_version

Reply = Callable[[dict[str, Any]], Any]


def fetch_session(
    deps: Deps,
    channel_id: str,
    session_id: str,
    *,
    reply: Reply,
    action: Action | None = None,
    urgent: bool = False,
    thread_ts: str | None = None,
) -> tuple[Account, NgrokClient, TunnelSession] | None:
    """The channel's account, its client and the session; None after `reply` said why not.
    `session_id` may be a host name. The policy checks before it already refuse channels
    without an account; the sentence for that case is a guard, not a path users should meet."""
    bound = deps.ngrok_for(channel_id)
    if bound is None:
        reply(render_error(f"No ngrok account is configured for channel {channel_id}."))
        return None
    account, client = bound
    context = ButtonContext(channel_id, thread_ts, deps.settings.approval_secret)
    try:
        if not SESSION_ID_RE.fullmatch(session_id):
            session = _by_host(deps, account, client, session_id, reply, action, context)
            return None if session is None else (account, client, session)
        return account, client, client.get_session(session_id, urgent=urgent)
    except NotFound as error:
        reply(_gone(deps, client, session_id, action, context) or render_error(explain(error)))
        return None
    except NgrokError as error:
        reply(render_error(explain(error, action=action, session_id=session_id)))
        return None


def _by_host(
    deps: Deps, account: Account, client: NgrokClient, name: str, reply: Reply,
    action: Action | None, context: ButtonContext,
) -> TunnelSession | None:  # fmt: skip
    """The one online agent with that host name; several or none are answered here."""
    keys = deps.config.host_keys
    fleet = deps.fleet.get(account.name, None, lambda: list(client.iter_sessions()))
    named = sessions_named(fleet, name, keys)
    if len(named) == 1:
        return named[0]
    if named:
        reply(render_host_choices(name, named, action=action, context=context, host_keys=keys))
    else:
        reply(render_no_host(name, nearest_names(fleet, name, keys)))
    return None


def _gone(
    deps: Deps, client: NgrokClient, session_id: str, action: Action | None,
    context: ButtonContext,
) -> dict[str, Any] | None:  # fmt: skip
    """What the bot knows about an id that is not online: its successor, or that it never
    saw it restart (with the last record of it, if any)."""
    successor = successor_of(deps.store, session_id)
    if successor is not None:
        try:
            client.get_session(successor.new_id)
            online = True
        except NotFound:
            online = False
        return render_restarted_as(
            session_id, successor.new_id, hops=successor.hops, online=online, action=action,
            context=context,
        )  # fmt: skip
    rows = deps.store.recent_audit(limit=1, session_id=session_id)
    last = f"{rows[0].get('action', '?')} {rows[0].get('event', '?')}" if rows else None
    return render_never_seen(session_id, last)


def newest_seen(deps: Deps, account: str) -> str | None:
    """The newest agent version in the account's last whole-fleet scan, if one is cached;
    None when none is (a details view must not cost a full scan just to know this)."""
    fleet = deps.fleet.peek(account, None)
    return newest_version(fleet) if fleet else None
