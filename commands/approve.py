"""Approve and Cancel on the requester's own (self-approval) prompt."""

from __future__ import annotations

from bot.deps import Deps
from bot.policy import approval_mode_for_request
from bot.slack.invocation import Invocation
from bot.slack.views.action_record import render_action_record
from bot.slack.views.approvals import (
    cancel_too_late_sentence,
    render_action_result,
    render_cancelled,
    used_sentence,
)
from bot.slack.views.errors import render_error
from bot.slack.views.progress import render_action_running
from bot.state.approvals import consume_approval, how_used
from commands.approval import audit_fields, may_click, perform, verify_click, where_claimed
from commands.execute import Outcome
from commands.lookup import fetch_session


def approve_own_request(inv: Invocation, deps: Deps, token: str) -> None:
    """Approve on a self-approval prompt: the requester, still an operator, exactly once."""
    claims = verify_click(inv, deps, token, {"self"})
    if claims is None:
        return
    action, session_id = claims.action, claims.targets[0]
    if not may_click(inv, deps, claims, mode="self"):
        return
    used = how_used(deps.store, claims)
    if used is not None:  # known before any ngrok call: say what happened to this prompt
        inv.private(render_error(used_sentence(action, session_id, used)))
        return
    # The prompt turns into "Restarting…" at once; the result (or a refusal) replaces it.
    inv.working(render_action_running(action, session_id))
    found = fetch_session(
        deps, claims.channel, session_id, reply=inv.private, action=action, urgent=True
    )
    if found is None:
        return
    account, _, session = found
    if approval_mode_for_request(deps.config, action, [session]) != "self":
        inv.replace(
            render_error(f"This {action} now needs a second person; ask again for a new prompt.")
        )
        return
    if not consume_approval(deps.store, claims, now=deps.clock(), use="approved"):
        used = how_used(deps.store, claims)
        inv.private(render_error(used_sentence(action, session_id, used)))
        return
    fields = audit_fields(claims, session, account.name)
    deps.auditor.record("approved", actor=inv.user_id, approver=inv.user_id, **fields)
    where = where_claimed(inv, claims)
    # The one public record, posted now and edited in place (commands.records) as it moves.
    record_ts = where.public(
        render_action_record(
            action, session, state="running", requester_id=claims.requester,
            approver_id=inv.user_id,
        )
    )  # fmt: skip

    def announce(outcome: Outcome) -> None:
        inv.replace(
            render_action_result(
                action,
                session.id,
                succeeded=outcome.ok,
                detail=outcome.sentence,
                elapsed_seconds=outcome.seconds,
                up_to_date=outcome.up_to_date,
            )
        )

    perform(
        deps, where, account.name, action, session, action_id=claims.nonce,
        approver=inv.user_id, fields=fields, announce=announce, record_ts=record_ts,
    )  # fmt: skip


def cancel_request(inv: Invocation, deps: Deps, token: str) -> None:
    """Cancel burns the token, so the prompt's Approve cannot be used afterwards."""
    claims = verify_click(inv, deps, token, {"self", "ask"})
    if claims is None:
        return
    if inv.user_id != claims.requester:
        inv.private(render_error("Only the person who asked for this can cancel it."))
        return
    if not consume_approval(deps.store, claims, now=deps.clock(), use="cancelled"):
        # Approve (or Request approval) won the race: say so, keep the result on screen.
        inv.private(render_error(cancel_too_late_sentence(how_used(deps.store, claims))))
        return
    deps.auditor.record("cancelled", actor=inv.user_id, **audit_fields(claims, None, None))
    inv.replace(render_cancelled())
