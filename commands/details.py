"""`session <id>` and the Details button: one agent with every field and its endpoints."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from bot.deps import Deps
from bot.ngrok.errors import NgrokError
from bot.policy import actions_for, may_view, rights_note
from bot.slack.blocks import ButtonContext
from bot.slack.invocation import Invocation
from bot.slack.views.details import render_session_detail
from bot.slack.views.errors import render_error
from commands.lookup import fetch_session, newest_seen

log = logging.getLogger("ngrok_ops.details")


def show_session(inv: Invocation, deps: Deps, session_id: str, *, shared: bool = False) -> None:
    """Fetches the session and its endpoints; the endpoints are best effort. `shared` (Post
    to channel) shows the same details to everyone in the channel or thread."""
    roles = deps.roles(inv.user_id)
    decision = may_view(deps.config, roles, inv.channel_id)
    if not decision.allowed:
        inv.private(render_error(decision.reason))
        return
    found = fetch_session(
        deps, inv.channel_id, session_id, reply=inv.private, thread_ts=inv.thread_ts
    )
    if found is None:
        return
    account, client, session = found
    try:
        endpoints = client.session_endpoints([session.id]).get(session.id, [])
    except NgrokError as error:
        # The session is what was asked for; its endpoints are a bonus worth a log line.
        log.warning("could not read the endpoints of %s: %s", session.id, error)
        endpoints = []
    message = render_session_detail(
        session,
        endpoints,
        now=datetime.now(UTC),
        context=ButtonContext(inv.channel_id, inv.thread_ts, deps.settings.approval_secret),
        allowed=actions_for(deps.config, roles, inv.channel_id),
        rights=rights_note(deps.config, roles, inv.channel_id),
        shared_by=inv.user_id if shared else None,
        host_keys=deps.config.host_keys,
        newest_version=newest_seen(deps, account.name),
    )
    if shared:
        inv.public(message)
    else:
        inv.answer(message)
