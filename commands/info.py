"""`help` (only what this user may run here) and `audit` (operators and approvers)."""

from __future__ import annotations

from bot.deps import Deps
from bot.policy import APPROVE, OPERATE, may_request, may_view
from bot.slack.invocation import Invocation
from bot.slack.views.actions import render_audit, render_error, render_help
from commands.grammar import ShowAudit, help_lines


def allowed_verbs(deps: Deps, user_id: str, channel_id: str) -> set[str]:
    """The verbs this user may run in this channel, for the help text."""
    roles = deps.roles(user_id)
    verbs = {"help"}
    if may_view(deps.config, roles, channel_id).allowed:
        verbs |= {"sessions", "session"}
    verbs |= {
        op
        for op in ("restart", "stop", "update")
        if may_request(deps.config, roles, op, channel_id).allowed
    }
    if roles & {OPERATE, APPROVE}:
        verbs.add("audit")
    return verbs


def show_help(inv: Invocation, deps: Deps) -> None:
    inv.private(render_help(help_lines(allowed_verbs(deps, inv.user_id, inv.channel_id))))


def show_audit(inv: Invocation, deps: Deps, command: ShowAudit) -> None:
    """Recent records, newest first, optionally for one session or one person."""
    if not deps.roles(inv.user_id) & {OPERATE, APPROVE}:
        inv.private(
            render_error(
                "Only operators and approvers can read the audit log: ask an admin to add you "
                "to roles.operator or roles.approver in BOT_CONFIG."
            )
        )
        return
    bound = deps.ngrok_for(inv.channel_id)
    account = bound[0].name if bound else None
    # Records carry their ngrok account; a channel sees only its own account's (and the
    # account-less ones, such as refusals), as with every other view. Read a wider window
    # so filtering still fills the page.
    wider = deps.store.recent_audit(
        limit=min(command.limit * 5, 500), session_id=command.session_id, user_id=command.user_id
    )
    entries = [e for e in wider if e.get("account") in (None, account)][: command.limit]
    # The title is a plain-text header, where a <@U…> mention would show as raw text.
    title = command.session_id or (f"user {command.user_id}" if command.user_id else "")
    inv.private(render_audit(entries, title=title))
