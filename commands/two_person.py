"""Two-person approval: a public request that another approver approves or denies.

The request lives in the store; its state moves by compare-and-set (requested -> running ->
done/failed, or -> denied / expired), so two approvers clicking at once, or two processes
handling one click, run the action once. The public message is edited at every step.
"""

from __future__ import annotations

import json
import logging

from slack_sdk.errors import SlackApiError

from bot.deps import Deps
from bot.policy import may_request
from bot.slack.invocation import Invocation
from bot.slack.views.approvals import (
    MAX_REASON,
    render_reason_modal,
    render_two_person_request,
    used_sentence,
)
from bot.slack.views.errors import render_error
from bot.slack.views.follow_ups import render_approval_requested
from bot.state.approvals import ApprovalClaims, consume_approval, how_used, issue_token
from bot.state.requests import TwoPersonRequest
from commands.approval import (
    JOB_EXPIRE_REQUEST,
    audit_fields,
    may_click,
    perform,
    verify_click,
    where_claimed,
)
from commands.lookup import fetch_session
from commands.records import edit_request, notify_requester

log = logging.getLogger("ngrok_ops.two_person")


def ask_for_approval(inv: Invocation, deps: Deps, token: str) -> None:
    """ "Request approval" on the requester's prompt: posts the public request once."""
    claims = verify_click(inv, deps, token, {"ask"})
    if claims is None:
        return
    action, session_id = claims.action, claims.targets[0]
    if inv.user_id != claims.requester:
        inv.private(render_error("Only the person who asked for this can send it for approval."))
        return
    decision = may_request(deps.config, deps.roles(inv.user_id), action, claims.channel)
    if not decision.allowed:
        inv.private(render_error(decision.reason))
        return
    found = fetch_session(deps, claims.channel, session_id, reply=inv.private, action=action)
    if found is None:
        return
    account, _, session = found
    if not consume_approval(deps.store, claims, now=deps.clock(), use="sent"):
        used = how_used(deps.store, claims)
        inv.private(render_error(used_sentence(action, session_id, used)))
        return
    ttl = deps.config.approval_ttl_seconds
    request = TwoPersonRequest(
        id=claims.nonce,
        state="requested",
        action=action,
        session=session,
        requester=claims.requester,
        channel=claims.channel,
        thread_ts=claims.thread_ts,
        account=account.name,
        ttl=ttl,
    )
    approver_token, _ = issue_token(
        secret=deps.settings.approval_secret,
        action=action,
        targets=[session.id],
        requester=claims.requester,
        channel=claims.channel,
        thread_ts=claims.thread_ts,
        ttl_seconds=ttl,
        epoch=deps.store.epoch(),
        kind="two-person",
        request_id=request.id,
        now=deps.clock(),
    )
    deps.store.put_request(request.id, request.to_record(), ttl_seconds=ttl + 3600)
    approvers = sorted(deps.config.roles.get("approver", frozenset()) - {claims.requester})
    ts = where_claimed(inv, claims).public(
        render_two_person_request(
            request,
            state="requested",
            approve_value=approver_token,
            deny_value=approver_token,
            approvers=approvers,
        )
    )
    if not ts:
        # Nobody could see the request, so nobody could approve it: withdraw it now.
        deps.store.transition_request(
            request.id, expect_state="requested", new_state="withdrawn", changes={}
        )
        inv.replace(
            render_error(
                "I could not post the approval request here, so nothing was requested. "
                "Invite me with `/invite @ngrok-ops` and ask again."
            )
        )
        return
    deps.store.transition_request(
        request.id, expect_state="requested", new_state="requested", changes={"ts": ts}
    )
    inv.replace(render_approval_requested(in_thread=bool(claims.thread_ts)))
    deps.auditor.record(
        "approval_requested", actor=inv.user_id, **audit_fields(claims, session, account.name)
    )
    deps.jobs.later(ttl, JOB_EXPIRE_REQUEST, {"request_id": request.id})


def _clicked_request(
    inv: Invocation, deps: Deps, token: str
) -> tuple[ApprovalClaims, TwoPersonRequest] | None:
    """The verified click on a public request and the request it names; None once the
    user has been told why not."""
    claims = verify_click(inv, deps, token, {"two-person"})
    if claims is None:
        return None
    record = deps.store.get_request(claims.request_id or "")
    if record is None:
        inv.private(render_error("This request is no longer known; ask for a new one."))
        return None
    return claims, TwoPersonRequest.from_record(record)


def ask_reason(inv: Invocation, deps: Deps, token: str, trigger_id: str) -> None:
    """Deny (or the requester's withdraw) on the public request: opens a modal for the
    reason first; the submission (`deny_with_reason`) decides. Without a usable trigger
    (it lasts about 3 s) the request is denied without a reason rather than not at all."""
    clicked = _clicked_request(inv, deps, token)
    if clicked is None:
        return
    claims, request = clicked
    withdrawing = inv.user_id == claims.requester
    if not withdrawing and not may_click(
        inv, deps, claims, mode="two-person", account=request.account
    ):
        return
    if request.state != "requested":
        inv.private(render_error(f"This request is already {request.state}."))
        return
    metadata = json.dumps({"t": token, "ch": inv.channel_id, "th": inv.thread_ts or ""})
    try:
        deps.slack.views_open(
            trigger_id=trigger_id,
            view=render_reason_modal(request, withdrawing=withdrawing, private_metadata=metadata),
        )
    except SlackApiError as error:
        log.warning("could not open the reason modal: %s", error.response.get("error"))
        decide(inv, deps, token, approve=False)


def deny_with_reason(inv: Invocation, deps: Deps, token: str, reason: str) -> None:
    """The reason modal was submitted."""
    decide(inv, deps, token, approve=False, reason=reason.strip()[:MAX_REASON])


def decide(inv: Invocation, deps: Deps, token: str, *, approve: bool, reason: str = "") -> None:
    """Approve or Deny on the public request; the requester hears of every outcome."""
    clicked = _clicked_request(inv, deps, token)
    if clicked is None:
        return
    claims, request = clicked
    withdrawing = not approve and inv.user_id == claims.requester
    requester_roles = deps.roles(claims.requester) if approve else None
    if not withdrawing and not may_click(
        inv, deps, claims, mode="two-person", account=request.account,
        requester_roles=requester_roles,
    ):  # fmt: skip
        return
    changes = {"decided_by": inv.user_id, **({"reason": reason} if reason else {})}
    won = deps.store.transition_request(
        request.id, expect_state="requested", new_state="running" if approve else "denied",
        changes=changes,
    )  # fmt: skip
    if won is None:
        current = deps.store.get_request(request.id) or request.to_record()
        inv.private(render_error(f"This request is already {current.get('state', 'decided')}."))
        return
    decided = TwoPersonRequest.from_record(won)
    fields = audit_fields(claims, decided.session, decided.account)
    if not approve:
        deps.auditor.record(
            "withdrawn" if withdrawing else "denied", actor=inv.user_id,
            detail=reason or None, **fields,
        )  # fmt: skip
        edit_request(deps, decided, "denied", actor_id=inv.user_id, reason=reason)
        if not withdrawing:
            notify_requester(deps, decided, "denied", actor_id=inv.user_id, reason=reason)
        return
    deps.auditor.record("approved", actor=inv.user_id, approver=inv.user_id, **fields)
    edit_request(deps, decided, "running", actor_id=inv.user_id)
    notify_requester(deps, decided, "running", actor_id=inv.user_id)
    # The public request is the action's record: commands.records moves it to done or
    # failed (an update only once its restart went through) and tells the requester.
    perform(
        deps, where_claimed(inv, claims), decided.account, decided.action, decided.session,
        action_id=decided.id, approver=inv.user_id, fields=fields,
        announce=lambda outcome: None, record_ts=decided.ts, two_person=True,
    )  # fmt: skip
