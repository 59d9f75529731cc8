"""Finding a session through the account bound to a channel, with the failure explained."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.deps import Deps
from bot.ngrok.client import NgrokClient
from bot.ngrok.errors import NgrokError
from bot.ngrok.models import Action, TunnelSession
from bot.settings.bot_config import Account
from bot.slack.views.errors import render_error
from commands.explain import explain

Reply = Callable[[dict[str, Any]], Any]


def fetch_session(
    deps: Deps,
    channel_id: str,
    session_id: str,
    *,
    reply: Reply,
    action: Action | None = None,
    urgent: bool = False,
) -> tuple[Account, NgrokClient, TunnelSession] | None:
    """The channel's account, its client and the session; None after `reply` said why not.
    The policy checks before it already refuse channels without an account; the sentence
    for that case is a guard, not a path users should meet."""
    bound = deps.ngrok_for(channel_id)
    if bound is None:
        reply(render_error(f"No ngrok account is configured for channel {channel_id}."))
        return None
    account, client = bound
    try:
        return account, client, client.get_session(session_id, urgent=urgent)
    except NgrokError as error:
        reply(render_error(explain(error, action=action, session_id=session_id)))
        return None
