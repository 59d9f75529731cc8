"""`session <id>` and the Details button: one agent with every field and its endpoints."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from bot.deps import Deps
from bot.ngrok.errors import NgrokError
from bot.policy import may_view
from bot.slack.blocks import ButtonContext
from bot.slack.invocation import Invocation
from bot.slack.views.details import render_session_detail
from bot.slack.views.errors import render_error
from commands.lookup import fetch_session

log = logging.getLogger("ngrok_ops.details")


def show_session(inv: Invocation, deps: Deps, session_id: str) -> None:
    """Fetches the session and its endpoints; the endpoints are best effort."""
    decision = may_view(deps.config, deps.roles(inv.user_id), inv.channel_id)
    if not decision.allowed:
        inv.private(render_error(decision.reason))
        return
    found = fetch_session(
        deps, inv.channel_id, session_id, reply=inv.private, thread_ts=inv.thread_ts
    )
    if found is None:
        return
    _, client, session = found
    try:
        endpoints = client.session_endpoints([session.id]).get(session.id, [])
    except NgrokError as error:
        # The session is what was asked for; its endpoints are a bonus worth a log line.
        log.warning("could not read the endpoints of %s: %s", session.id, error)
        endpoints = []
    inv.answer(
        render_session_detail(
            session,
            endpoints,
            now=datetime.now(UTC),
            context=ButtonContext(inv.channel_id, inv.thread_ts, deps.settings.approval_secret),
            host_keys=deps.config.host_keys,
        )
    )
