"""`audit [n] [session | @user]`: recent records, for operators and approvers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.deps import Deps
from bot.policy import may_read_audit
from bot.slack.invocation import Invocation
from bot.slack.views.audit import render_audit
from bot.slack.views.errors import render_error, render_notice
from bot.slack.views.export import export_comment, render_audit_csv
from commands.grammar import ShowAudit


def show_audit(inv: Invocation, deps: Deps, command: ShowAudit) -> None:
    """Recent records, newest first, optionally for one session or one person."""
    decision = may_read_audit(deps.roles(inv.user_id))
    if not decision.allowed:
        inv.private(render_error(decision.reason))
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
    if command.csv:
        _upload_csv(inv, entries)
        return
    inv.private(render_audit(entries, title=title))


def _upload_csv(inv: Invocation, entries: list[dict[str, Any]]) -> None:
    """The machine form: the same records as a CSV file, shared with the requester only
    (a DM from the bot), since the audit log is not for everyone in the channel."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    try:
        opened = inv.client.conversations_open(users=inv.user_id)
        inv.client.files_upload_v2(
            channel=str((opened.get("channel") or {}).get("id") or ""),
            content=render_audit_csv(entries),
            filename=f"ngrok-ops-audit-{stamp}.csv",
            title=f"ngrok-ops audit {stamp} UTC",
            initial_comment=export_comment(inv.user_id, len(entries), "audit records"),
        )
    except SlackApiError as error:
        code = error.response.get("error")
        inv.private(
            render_error(
                f"Slack refused the CSV file ({code}); check the files:write and im:write scopes."
            )
        )
        return
    inv.private(render_notice(f"Sent you {len(entries)} audit records as a CSV file."))
