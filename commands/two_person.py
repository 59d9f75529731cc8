"""Two-person approval: a public request that another approver approves or denies.

The request lives in the store; its state moves by compare-and-set (requested -> running ->
done/failed, or -> denied / expired), so two approvers clicking at once, or two processes
handling one click, run the action once. The public message is edited at every step.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.deps import Deps
from bot.ngrok.models import TunnelSession
from bot.policy import may_request
from bot.slack.blocks import message, section
from bot.slack.invocation import Invocation
from bot.slack.views.actions import render_error, render_two_person_request
from bot.state.approvals import ApprovalClaims, consume_approval, issue_token
from commands.control import audit_fields, may_click, perform, verify_click, where_claimed
from commands.execute import Outcome
from commands.lookup import fetch_session

log = logging.getLogger("ngrok_ops.two_person")


def _render(record: dict[str, Any], state: str, **extra: Any) -> dict[str, Any]:
    return render_two_person_request(
        record["action"],
        TunnelSession.from_api(record["session"]),
        state=state,  # type: ignore[arg-type]
        requester_id=record["requester"],
        ttl_seconds=record["ttl"],
        **extra,
    )


def _edit(deps: Deps, record: dict[str, Any], state: str, **extra: Any) -> None:
    """Edits the public request in place; a failed edit is logged, the state is in the store."""
    if not record.get("ts"):
        return
    try:
        deps.slack.chat_update(
            channel=record["channel"], ts=record["ts"], **_render(record, state, **extra)
        )
    except SlackApiError as error:
        log.warning("could not edit request %s: %s", record["id"], error.response.get("error"))


def ask_for_approval(inv: Invocation, deps: Deps, token: str) -> None:
    """ "Request approval" on the requester's prompt: posts the public request once."""
    claims = verify_click(inv, deps, token, {"ask"})
    if claims is None:
        return
    op, session_id = claims.action, claims.targets[0]
    if inv.user_id != claims.requester:
        inv.private(render_error("Only the person who asked for this can send it for approval."))
        return
    decision = may_request(deps.config, deps.roles(inv.user_id), op, claims.channel)
    if not decision.allowed:
        inv.private(render_error(decision.reason))
        return
    found = fetch_session(deps, claims.channel, session_id, reply=inv.private, op=op)
    if found is None:
        return
    account, _, session = found
    if not consume_approval(deps.store, claims, now=deps.clock()):
        inv.private(render_error("This request was already sent for approval."))
        return
    ttl = deps.config.approval_ttl_seconds
    request_id = claims.nonce
    approver_token, _ = issue_token(
        secret=deps.settings.approval_secret,
        action=op,
        targets=[session.id],
        requester=claims.requester,
        channel=claims.channel,
        thread_ts=claims.thread_ts,
        ttl_seconds=ttl,
        epoch=deps.store.epoch(),
        kind="two-person",
        request_id=request_id,
        now=deps.clock(),
    )
    record = {
        "id": request_id,
        "state": "requested",
        "action": op,
        "session": session.to_api(),
        "requester": claims.requester,
        "channel": claims.channel,
        "thread_ts": claims.thread_ts,
        "account": account.name,
        "ttl": ttl,
    }
    deps.store.put_request(request_id, record, ttl_seconds=ttl + 3600)
    where = where_claimed(inv, claims)
    approvers = sorted(deps.config.roles.get("approver", frozenset()) - {claims.requester})
    ts = where.public(
        _render(
            record,
            "requested",
            approve_value=approver_token,
            deny_value=approver_token,
            approvers=approvers,
        )
    )
    if not ts:
        # Nobody could see the request, so nobody could approve it: withdraw it now.
        deps.store.transition_request(
            request_id, expect_state="requested", new_state="withdrawn", changes={}
        )
        inv.replace(
            render_error(
                "I could not post the approval request here, so nothing was requested. "
                "Invite me with `/invite @ngrok-ops` and ask again."
            )
        )
        return
    deps.store.transition_request(
        request_id, expect_state="requested", new_state="requested", changes={"ts": ts}
    )
    place = "thread" if claims.thread_ts else "channel"
    text = f"Approval requested in the {place}; someone with the approver role must approve it."
    inv.replace(message(text, [section(text)]))
    deps.auditor.record(
        "approval_requested", actor=inv.user_id, **audit_fields(claims, session, account.name)
    )
    deps.jobs.later(ttl, expire_request, deps, request_id)


def expire_request(deps: Deps, request_id: str) -> None:
    """Runs at the expiry time in whichever process scheduled it; a no-op once decided."""
    record = deps.store.transition_request(
        request_id, expect_state="requested", new_state="expired", changes={}
    )
    if record is None:
        return
    deps.auditor.record(
        "expired",
        actor=record["requester"],
        action=record["action"],
        session_id=record["session"]["id"],
        requester=record["requester"],
        channel=record["channel"],
        request_id=request_id,
        account=record["account"],
    )
    _edit(deps, record, "expired")


def _load_request(inv: Invocation, deps: Deps, claims: ApprovalClaims) -> dict[str, Any] | None:
    record = deps.store.get_request(claims.request_id or "")
    if record is None:
        inv.private(render_error("This request is no longer known; ask for a new one."))
    return record


def decide(inv: Invocation, deps: Deps, token: str, *, approve: bool) -> None:
    """Approve or Deny on the public request."""
    claims = verify_click(inv, deps, token, {"two-person"}, on_expired_request=expire_request)
    if claims is None:
        return
    record = _load_request(inv, deps, claims)
    if record is None:
        return
    op = claims.action
    withdrawing = not approve and inv.user_id == claims.requester
    requester_roles = deps.roles(claims.requester) if approve else None
    if not withdrawing and not may_click(
        inv, deps, claims, mode="two-person", account=record["account"],
        requester_roles=requester_roles,
    ):  # fmt: skip
        return
    new_state = "running" if approve else "denied"
    won = deps.store.transition_request(
        record["id"], expect_state="requested", new_state=new_state,
        changes={"decided_by": inv.user_id},
    )  # fmt: skip
    if won is None:
        current = deps.store.get_request(record["id"]) or record
        inv.private(render_error(f"This request is already {current.get('state', 'decided')}."))
        return
    session = TunnelSession.from_api(won["session"])
    fields = audit_fields(claims, session, won["account"])
    if not approve:
        event = "withdrawn" if withdrawing else "denied"
        deps.auditor.record(event, actor=inv.user_id, **fields)
        _edit(deps, won, "denied", actor_id=inv.user_id)
        return
    deps.auditor.record("approved", actor=inv.user_id, approver=inv.user_id, **fields)
    _edit(deps, won, "running", actor_id=inv.user_id)
    bound = deps.ngrok_for(claims.channel)
    assert bound is not None  # may_approve refuses channels without an account
    _, client = bound

    def announce(outcome: Outcome) -> None:
        state = "done" if outcome.ok else "failed"
        done = deps.store.transition_request(
            won["id"], expect_state="running", new_state=state, changes={}
        )
        _edit(
            deps, done or won, state, actor_id=inv.user_id,
            detail="" if outcome.ok else outcome.sentence, elapsed_seconds=outcome.seconds,
        )  # fmt: skip

    perform(
        deps, where_claimed(inv, claims), client, op, session, approver=inv.user_id,
        fields=fields, announce=announce,
    )  # fmt: skip
