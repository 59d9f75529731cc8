"""`restart|stop|update <id>` and the Restart/Update/Stop buttons: the approval prompt."""

from __future__ import annotations

from bot.deps import Deps
from bot.ngrok.models import Action, unsupported_reason
from bot.policy import approval_mode_for_request, may_request
from bot.slack.invocation import Invocation
from bot.slack.views.agent_text import nothing_to_update_sentence, runs_newest
from bot.slack.views.approvals import render_approval_prompt
from bot.slack.views.errors import render_error, render_notice
from bot.state.approvals import issue_token
from commands.approval import audit_fields
from commands.lookup import fetch_session, newest_seen


def request_action(inv: Invocation, deps: Deps, action: Action, session_id: str) -> None:
    """Checks the right to ask, then shows the requester an approval prompt."""
    decision = may_request(deps.config, deps.roles(inv.user_id), action, inv.channel_id)
    if not decision.allowed:
        deps.auditor.record(
            "refused", action=action, actor=inv.user_id, session_id=session_id,
            channel=inv.channel_id, detail=decision.reason,
        )  # fmt: skip
        inv.private(render_error(decision.reason))
        return
    found = fetch_session(
        deps, inv.channel_id, session_id, reply=inv.private, action=action,
        thread_ts=inv.thread_ts,
    )  # fmt: skip
    if found is None:
        return
    account, _, session = found
    cannot = unsupported_reason(action, session)
    if cannot:
        inv.private(render_error(cannot))
        return
    newest = newest_seen(deps, account.name) if action == "update" else None
    if newest and runs_newest(session, newest):
        inv.private(render_notice(nothing_to_update_sentence(session_id, newest)))
        return
    mode = approval_mode_for_request(deps.config, action, [session])
    ttl = deps.config.approval_ttl_seconds
    token, claims = issue_token(
        secret=deps.settings.approval_secret,
        action=action,
        targets=[session.id],
        requester=inv.user_id,
        channel=inv.channel_id,
        thread_ts=inv.thread_ts,
        ttl_seconds=ttl,
        kind="self" if mode == "self" else "ask",
        now=deps.clock(),
        epoch=deps.store.epoch(),
    )
    inv.private(
        render_approval_prompt(
            action,
            session,
            requester_id=inv.user_id,
            approve_value=token,
            cancel_value=token,
            two_person=mode == "two-person",
            ttl_seconds=ttl,
        )
    )
    deps.auditor.record(
        "requested", actor=inv.user_id, mode=mode, **audit_fields(claims, session, account.name)
    )
