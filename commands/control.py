"""restart / stop / update: the request, the requester's own approval, cancel, and the run.

The prompt's buttons carry a signed token (bot.approvals), so any process can check a click;
the token's nonce is consumed in the store before the single POST, which makes a double
click, a replayed payload or two processes handling one click run the action exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bot.deps import Deps
from bot.ngrok.client import NgrokClient
from bot.ngrok.models import TunnelSession
from bot.policy import ApprovalMode, approval_mode, may_approve, may_request
from bot.slack.blocks import clip, code_span, message, section
from bot.slack.invocation import Invocation
from bot.slack.views.actions import (
    render_action_result,
    render_approval_prompt,
    render_cancelled,
    render_error,
    render_public_record,
)
from bot.slack.views.sessions import unavailable_reason
from bot.state.approvals import (
    ApprovalClaims,
    TokenError,
    consume_approval,
    issue_token,
    verify_current_token,
)
from commands.execute import Outcome, find_successor, run_action
from commands.lookup import fetch_session

log = logging.getLogger("ngrok_ops.control")

INVALID_BUTTON = (
    "This button is not valid here (it was altered, or signed by another installation); "
    "nothing was done."
)
EXPIRED = (
    "This approval expired; nothing was done. Ask again with `restart`, `stop` or `update` "
    "and the session id for a new prompt."
)
RESTART_SEARCH_SECONDS = 60.0


def audit_fields(
    claims: ApprovalClaims, session: TunnelSession | None, account: str | None
) -> dict[str, Any]:
    """The fields every record of one request shares."""
    return {
        "action": claims.action,
        "session_id": claims.targets[0] if claims.targets else None,
        "requester": claims.requester,
        "channel": claims.channel,
        "thread_ts": claims.thread_ts,
        "request_id": claims.request_id or claims.nonce,
        "account": account,
        "metadata": session.metadata[:300] if session and session.metadata else None,
    }


def where_claimed(inv: Invocation, claims: ApprovalClaims) -> Invocation:
    """The conversation the request was made in (clicks on ephemerals do not say)."""
    return Invocation(
        entry="action",
        user_id=inv.user_id,
        channel_id=claims.channel,
        thread_ts=claims.thread_ts,
        client=inv.client,
    )


def approval_mode_for(deps: Deps, op: str, session: TunnelSession) -> ApprovalMode:
    """An approved update also restarts the agent, so it needs what a restart needs too."""
    actions = ("update", "restart") if op == "update" else (op,)
    modes = {approval_mode(deps.config, action, session) for action in actions}
    return "two-person" if "two-person" in modes else "self"


def request_action(inv: Invocation, deps: Deps, op: str, session_id: str) -> None:
    """Checks the right to ask, then shows the requester an approval prompt."""
    decision = may_request(deps.config, deps.roles(inv.user_id), op, inv.channel_id)
    if not decision.allowed:
        deps.auditor.record(
            "refused", action=op, actor=inv.user_id, session_id=session_id,
            channel=inv.channel_id, detail=decision.reason,
        )  # fmt: skip
        inv.private(render_error(decision.reason))
        return
    found = fetch_session(deps, inv.channel_id, session_id, reply=inv.private, op=op)
    if found is None:
        return
    account, _, session = found
    cannot = unavailable_reason(op, session)  # type: ignore[arg-type]
    if cannot:
        inv.private(render_error(cannot))
        return
    mode = approval_mode_for(deps, op, session)
    ttl = deps.config.approval_ttl_seconds
    token, claims = issue_token(
        secret=deps.settings.approval_secret,
        action=op,
        targets=[session.id],
        requester=inv.user_id,
        channel=inv.channel_id,
        thread_ts=inv.thread_ts,
        ttl_seconds=ttl,
        epoch=deps.store.epoch(),
        kind="self" if mode == "self" else "ask",
        now=deps.clock(),
    )
    inv.private(
        render_approval_prompt(
            op,  # type: ignore[arg-type]
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


def verify_click(
    inv: Invocation,
    deps: Deps,
    token: str,
    kinds: set[str],
    *,
    on_expired_request: Callable[[Deps, str], None] = lambda deps, request_id: None,
) -> ApprovalClaims | None:
    """The claims of a clicked button, or None after telling the clicker why not."""
    try:
        claims = verify_current_token(
            token, secret=deps.settings.approval_secret, store=deps.store, now=deps.clock()
        )
    except TokenError as error:
        if error.reason == "expired":
            expired = error.claims
            if expired is not None and expired.kind == "two-person" and expired.request_id:
                # The expiry timer may have died with its process; whoever clicks late
                # moves the public request to "expired" (a no-op when already decided).
                on_expired_request(deps, expired.request_id)
            elif expired is not None:
                deps.auditor.record(
                    "expired", actor=inv.user_id, **audit_fields(expired, None, None)
                )
            # A private prompt is replaced; a public request keeps its record for everyone.
            reply = inv.private if "two-person" in kinds else inv.replace
            reply(render_error(EXPIRED))
        else:
            log.warning("rejected a %s approval token from %s", error.reason, inv.user_id)
            inv.private(render_error(str(error) if error.reason == "reset" else INVALID_BUTTON))
        return None
    if claims.kind not in kinds or len(claims.targets) != 1:
        log.warning("rejected a %s token on the wrong button from %s", claims.kind, inv.user_id)
        inv.private(render_error(INVALID_BUTTON))
        return None
    return claims


def may_click(
    inv: Invocation,
    deps: Deps,
    claims: ApprovalClaims,
    *,
    mode: ApprovalMode,
    account: str | None = None,
    requester_roles: frozenset[str] | None = None,
) -> bool:
    """The clicker's rights as they are now; a refusal is recorded and explained."""
    decision = may_approve(
        deps.config, deps.roles(inv.user_id), claims.requester, inv.user_id, claims.action,
        claims.channel, mode=mode, requester_roles=requester_roles,
    )  # fmt: skip
    if not decision.allowed:
        deps.auditor.record(
            "refused", actor=inv.user_id, detail=decision.reason,
            **audit_fields(claims, None, account),
        )  # fmt: skip
        inv.private(render_error(decision.reason))
    return decision.allowed


def approve_own_request(inv: Invocation, deps: Deps, token: str) -> None:
    """Approve on a self-approval prompt: the requester, still an operator, exactly once."""
    claims = verify_click(inv, deps, token, {"self"})
    if claims is None:
        return
    op, session_id = claims.action, claims.targets[0]
    if not may_click(inv, deps, claims, mode="self"):
        return
    found = fetch_session(deps, claims.channel, session_id, reply=inv.private, op=op)
    if found is None:
        return
    account, client, session = found
    if approval_mode_for(deps, op, session) != "self":
        inv.replace(
            render_error(f"This {op} now needs a second person; ask again for a new prompt.")
        )
        return
    if not consume_approval(deps.store, claims, now=deps.clock()):
        inv.private(render_error(f"This {op} was already approved once; it does not run twice."))
        return
    fields = audit_fields(claims, session, account.name)
    deps.auditor.record("approved", actor=inv.user_id, approver=inv.user_id, **fields)
    where = where_claimed(inv, claims)

    def announce(outcome: Outcome) -> None:
        inv.replace(
            render_action_result(
                op,  # type: ignore[arg-type]
                session.id,
                succeeded=outcome.ok,
                detail=outcome.sentence,
                elapsed_seconds=outcome.seconds,
            )
        )
        where.public(
            render_public_record(
                op,  # type: ignore[arg-type]
                session,
                requester_id=claims.requester,
                approver_id=inv.user_id,
                succeeded=outcome.ok,
                elapsed_seconds=outcome.seconds,
                detail="" if outcome.ok else outcome.sentence,
            )
        )

    perform(
        deps, where, client, op, session, approver=inv.user_id, fields=fields, announce=announce
    )


def cancel_request(inv: Invocation, deps: Deps, token: str) -> None:
    """Cancel burns the token, so the prompt's Approve cannot be used afterwards."""
    claims = verify_click(inv, deps, token, {"self", "ask"})
    if claims is None:
        return
    if inv.user_id != claims.requester:
        inv.private(render_error("Only the person who asked for this can cancel it."))
        return
    if not consume_approval(deps.store, claims, now=deps.clock()):
        # Approve (or Request approval) won the race: say so, keep the result on screen.
        inv.private(render_error("This request was already approved or sent; nothing to cancel."))
        return
    deps.auditor.record("cancelled", actor=inv.user_id, **audit_fields(claims, None, None))
    inv.replace(render_cancelled())


def perform(
    deps: Deps,
    where: Invocation,
    client: NgrokClient,
    op: str,
    session: TunnelSession,
    *,
    approver: str,
    fields: dict[str, Any],
    announce: Callable[[Outcome], None],
) -> Outcome:
    """The one POST, its records, and what follows a success (finding the restarted agent,
    or the restart that completes an update)."""
    outcome = run_action(client, op, session.id)
    if fields.get("account"):
        deps.fleet.invalidate(fields["account"])  # the list must not show the old state
    deps.auditor.record(
        "executed" if outcome.ok else "failed",
        actor=approver,
        approver=approver,
        outcome="ok" if outcome.ok else "failed",
        detail=outcome.sentence,
        duration_ms=round(outcome.seconds * 1000),
        error_code=outcome.error_code,
        may_have_been_applied=outcome.may_have_been_applied or None,
        **fields,
    )
    announce(outcome)
    if outcome.ok and op == "restart":
        deps.jobs.submit(report_successor, deps, where, client, session)
    elif outcome.ok and op == "update":
        delay = deps.settings.update_restart_delay
        deps.jobs.later(delay, finish_update, deps, where, client, session, approver, fields)
    return outcome


def report_successor(
    deps: Deps, where: Invocation, client: NgrokClient, session: TunnelSession
) -> None:
    """Names the new session id of a restarted agent in the thread, or says it is missing."""
    successor = find_successor(
        client, session, timeout=RESTART_SEARCH_SECONDS, sleep=deps.jobs.pause
    )
    old = code_span(session.id, 60)
    if successor is None:
        text = (
            f":warning: Agent {old} has not come back within {RESTART_SEARCH_SECONDS:.0f} s "
            "of the restart; check the agent's host."
        )
    else:
        text = (
            f":arrows_counterclockwise: Agent {old} is back as {code_span(successor.id, 60)} "
            f"(agent version {clip(successor.agent_version or '?', 40)})."
        )
    where.public(message(text, [section(text)]))


def finish_update(
    deps: Deps,
    where: Invocation,
    client: NgrokClient,
    session: TunnelSession,
    approver: str,
    fields: dict[str, Any],
) -> None:
    """An update only takes effect after a restart at least 10 s later; the bot does it,
    except on Windows, where the agent cannot restart itself."""
    if session.is_windows:
        text = (
            f"The update of {code_span(session.id, 60)} is installed; Windows agents cannot "
            "restart themselves, so stop it and let the service manager start it again."
        )
        where.public(message(text, [section(text)]))
        return

    def announce(outcome: Outcome) -> None:
        if outcome.ok:
            text = f"Restarted {code_span(session.id, 60)} to finish its update."
        else:
            text = f"The restart that finishes the update failed: {clip(outcome.sentence, 1000)}"
        where.public(message(text, [section(text)]))

    perform(
        deps, where, client, "restart", session, approver=approver,
        fields={**fields, "action": "restart", "follows": "update"}, announce=announce,
    )  # fmt: skip
