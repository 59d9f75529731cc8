"""Messages around an action: the approval prompt, its result, the public record, the
two-person request, cancelled, and what follows an action in its thread.

Pure renderers like `bot.slack.views.sessions`; user ids are shown as mentions only when they are
well-formed ids, and every other value is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from bot.ngrok.models import Action, TunnelSession
from bot.slack import blocks as bk
from bot.slack.ids import (
    ACTION_APPROVE,
    ACTION_ASK_APPROVAL,
    ACTION_CANCEL,
    ACTION_TWO_PERSON_APPROVE,
    ACTION_TWO_PERSON_DENY,
    VIEW_DECISION_REASON,
)
from bot.slack.views.agent_text import (
    OP_EFFECT,
    OP_LABEL,
    back_words,
    not_updated_words,
    session_summary,
    unconfirmed_words,
    waiting_words,
)
from bot.state.requests import TwoPersonRequest

TwoPersonState = Literal[
    "requested", "running", "restarting", "waiting", "done", "failed", "unconfirmed",
    "not_updated", "denied", "expired",
]  # fmt: skip
UP_TO_DATE_WORDS = "already up to date (ngrok: no update available); nothing was changed"
# ngrok's 204 only says it accepted the request; the action's record says when it is done.
_AFTER: dict[Action, str] = {
    "restart": "The agent will come back with a new session id; the action's record says "
    "when it is back.",
    "update": "The bot restarts the agent at least 10 s later so the new version runs; the "
    "action's record says when it is back on it.",
    "stop": "The action's record says when the session is gone.",
}


def format_expiry(ttl_seconds: int) -> str:
    """`10 minutes`, `1 minute`, `45 seconds`: the wording of "expires in …"."""
    if ttl_seconds < 60:
        return f"{max(ttl_seconds, 0)} seconds"
    minutes = math.ceil(ttl_seconds / 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def _approve_confirm(op: Action) -> dict[str, Any] | None:
    if op != "stop":
        return None
    return bk.confirm_dialog(
        "Stop this agent?", OP_EFFECT["stop"], "Stop agent", "Keep it running", danger=True
    )


def render_approval_prompt(
    op: Action,
    session: TunnelSession,
    *,
    requester_id: str,
    approve_value: str,
    cancel_value: str,
    two_person: bool,
    ttl_seconds: int,
) -> dict[str, Any]:
    """The ephemeral "are you sure" that only the requester sees."""
    label = OP_LABEL[op]
    blocks = [
        bk.section(f"*{label} agent {bk.code_span(session.id, 60)}?*\n{OP_EFFECT[op]}"),
        bk.section(session_summary(session), block_id="summary"),
    ]
    if two_person:
        blocks.append(
            bk.section(
                f"A second person must approve this {op}. *Request approval* posts the "
                "request here, and someone else who may run it approves or denies it."
            )
        )
        main = bk.button("Request approval", ACTION_ASK_APPROVAL, approve_value, style="primary")
    else:
        style: Literal["primary", "danger"] = "danger" if op == "stop" else "primary"
        main = bk.button(
            f"Approve {op}",
            ACTION_APPROVE,
            approve_value,
            style=style,
            confirm=_approve_confirm(op),
        )
    cancel = bk.button("Cancel", ACTION_CANCEL, cancel_value)
    blocks.append(bk.actions([main, cancel], "approval"))
    blocks.append(
        bk.context(
            f"Requested by {bk.user_mention(requester_id)} · expires in "
            f"{format_expiry(ttl_seconds)} · only you can see this"
        )
    )
    return bk.message(f"{label} agent {session.id}? Approve or cancel.", blocks)


def render_action_result(
    op: Action,
    session_id: str,
    *,
    succeeded: bool,
    detail: str = "",
    elapsed_seconds: float | None = None,
    up_to_date: bool = False,
) -> dict[str, Any]:
    """Replaces the prompt: done or failed, in one sentence (`detail` is the error).
    `up_to_date`: ngrok said "no update available", which is no failure."""
    target = bk.code_span(session_id, 60)
    took = f" in {bk.format_elapsed(elapsed_seconds)}" if elapsed_seconds is not None else ""
    if up_to_date:
        text = f":white_check_mark: {target} is {UP_TO_DATE_WORDS}."
        return bk.message(f"{session_id} is already up to date.", [bk.section(text)])
    if succeeded:
        text = f":hourglass_flowing_sand: ngrok accepted the {op} of {target}{took}. {_AFTER[op]}"
        fallback = f"ngrok accepted the {op} of {session_id}."
    else:
        reason = bk.clip(detail or "ngrok gave no reason", 1000)
        text = f":x: Could not {op} {target}: {reason}"
        fallback = f"Could not {op} {session_id}: {detail}"
    return bk.message(fallback, [bk.section(text)])


def who_line(requester_id: str, approver_id: str | None) -> str:
    """`Requested by @a · approved by @b`, the context line of every record."""
    return _who(requester_id, approver_id)


def _who(requester_id: str, approver_id: str | None) -> str:
    requester = bk.user_mention(requester_id)
    if not approver_id:
        return f"Requested by {requester}"
    if approver_id == requester_id:
        return f"Requested and approved by {requester}"
    return f"Requested by {requester} · approved by {bk.user_mention(approver_id)}"


def render_two_person_request(
    request: TwoPersonRequest,
    *,
    state: TwoPersonState,
    approve_value: str = "",
    deny_value: str = "",
    actor_id: str | None = None,
    detail: str = "",
    elapsed_seconds: float | None = None,
    approvers: Sequence[str] = (),
    reason: str = "",
    up_to_date: bool = False,
    restart_in: float = 0.0,
    successor: TunnelSession | None = None,
    waited_seconds: float = 0.0,
) -> dict[str, Any]:
    """The public request, edited in place as it moves on. `actor_id` is whoever approved
    or denied it; `detail` the error for `failed`; `approvers` (configured user and group
    ids) are mentioned while the request waits, so someone who can approve it notices.
    `restarting` (an update that ran; its restart comes `restart_in` seconds later) and
    `waiting` (ngrok's 204 came back; a read has not shown the effect yet) are shown only:
    the request stays "running" in the store until a read confirms it (`done`, with the
    agent's `successor`) or the look gives up after `waited_seconds` (`unconfirmed`)."""
    op, session, ttl_seconds = request.action, request.session, request.ttl
    target = bk.code_span(session.id, 60)
    label = OP_LABEL[op]
    ask = f"{bk.user_mention(request.requester)} asks to *{op}* agent {target}."
    actor = bk.user_mention(actor_id) if actor_id else "someone"
    took = f" in {bk.format_elapsed(elapsed_seconds)}" if elapsed_seconds is not None else ""
    status = {
        "requested": f"A second person must approve; expires in {format_expiry(ttl_seconds)}.",
        "running": f":hourglass_flowing_sand: Approved by {actor}; running…",
        "restarting": f":hourglass_flowing_sand: Approved by {actor}; updated{took}, restarting "
        f"in {bk.format_elapsed(restart_in)} so the new version runs…",
        "waiting": f":hourglass_flowing_sand: Approved by {actor}; {waiting_words(op, took)}",
        "done": f":white_check_mark: Approved by {actor}; {UP_TO_DATE_WORDS}."
        if up_to_date
        else f":white_check_mark: Approved by {actor}; done{took}: "
        + back_words(op, session, successor),
        "failed": f":x: Approved by {actor}; failed{took}: "
        + bk.clip(detail or "ngrok gave no reason", 1000),
        "unconfirmed": f":warning: Approved by {actor}; " + unconfirmed_words(op, waited_seconds),
        "not_updated": f":warning: Approved by {actor}; "
        + (not_updated_words(successor) if successor else "the update did not take."),
        "denied": _denied_line(request, actor_id, reason),
        "expired": ":hourglass: Expired before anyone approved it; nothing was changed.",
    }[state]
    blocks = [
        bk.section(f"{ask}\n{OP_EFFECT[op]}"),
        bk.section(session_summary(session), block_id="summary"),
        bk.section(status, block_id=f"state_{state}"),
    ]
    if state == "requested":
        approve = bk.button(
            f"Approve {op}",
            ACTION_TWO_PERSON_APPROVE,
            approve_value,
            style="primary",
            confirm=_approve_confirm(op),
        )
        deny = bk.button("Deny", ACTION_TWO_PERSON_DENY, deny_value)
        blocks.append(bk.actions([approve, deny], "two_person"))
        pings = [m for m in map(bk.member_mention, approvers[:20]) if m]
        if pings:
            blocks.append(bk.context("Approvers: " + " ".join(pings)))
    return bk.message(f"{label} of {session.id}: {state}", blocks)


def _denied_line(request: TwoPersonRequest, actor_id: str | None, reason: str) -> str:
    actor = bk.user_mention(actor_id) if actor_id else "someone"
    because = f" Reason: {bk.clip(bk.one_line(reason), 500)}" if reason.strip() else ""
    if actor_id and actor_id == request.requester:
        return f":leftwards_arrow_with_hook: Withdrawn by {actor}; nothing was changed.{because}"
    return f":no_entry_sign: Denied by {actor}; nothing was changed.{because}"


NoticeState = Literal[
    "running", "done", "failed", "unconfirmed", "not_updated", "denied", "expired"
]


def render_requester_notice(
    request: TwoPersonRequest,
    state: NoticeState,
    *,
    actor_id: str | None = None,
    reason: str = "",
    detail: str = "",
    up_to_date: bool = False,
    successor: TunnelSession | None = None,
    waited_seconds: float = 0.0,
) -> dict[str, Any]:
    """What the requester of a two-person request is told privately at each outcome; `done`
    only once a read confirmed it (with the agent's `successor`)."""
    op, target = request.action, bk.code_span(request.session.id, 60)
    actor = bk.user_mention(actor_id) if actor_id else "someone"
    because = f" Reason: {bk.clip(bk.one_line(reason), 500)}" if reason.strip() else ""
    text = {
        "running": f":hourglass_flowing_sand: {actor} approved your request to {op} {target}; "
        "it is running now.",
        "done": f":white_check_mark: Your request to {op} {target} ran: {UP_TO_DATE_WORDS}."
        if up_to_date
        else f":white_check_mark: Your request to {op} {target} ran: done, "
        + back_words(op, request.session, successor),
        "failed": f":x: Your request to {op} {target} was approved but failed: "
        + bk.clip(detail or "ngrok gave no reason", 1000),
        "unconfirmed": f":warning: Your request to {op} {target} was approved and sent: "
        + unconfirmed_words(op, waited_seconds),
        "not_updated": f":warning: Your request to {op} {target} was approved and sent: "
        + (not_updated_words(successor) if successor else "the update did not take."),
        "denied": f":no_entry_sign: {actor} denied your request to {op} {target}; nothing was "
        f"changed.{because}",
        "expired": f":hourglass: Your request to {op} {target} expired before anyone approved "
        f"it; nothing was changed. Ask again with `{op} {bk.clip(request.session.id, 60)}`.",
    }[state]
    fallback = f"Your request to {op} {request.session.id}: {state}"
    return bk.message(fallback, [bk.section(text)])


REASON_BLOCK = "reason"
REASON_ACTION = "reason"
MAX_REASON = 500


def render_reason_modal(
    request: TwoPersonRequest, *, withdrawing: bool, private_metadata: str
) -> dict[str, Any]:
    """The modal a denier (or the requester, withdrawing) gives a reason in. The reason is
    optional: a denial must never be blocked on typing one."""
    op, sid = request.action, request.session.id
    title = "Withdraw request" if withdrawing else "Deny request"
    target = f"*{op}* {bk.code_span(sid, 60)}"
    who = "your" if withdrawing else f"{bk.user_mention(request.requester)}'s"
    question = f"{'Withdraw' if withdrawing else 'Deny'} {who} request to {target}?"
    return {
        "type": "modal",
        "callback_id": VIEW_DECISION_REASON,
        "private_metadata": private_metadata,
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Withdraw" if withdrawing else "Deny"},
        "close": {"type": "plain_text", "text": "Back"},
        "blocks": [
            bk.section(question),
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Reason (goes into the record)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_ACTION,
                    "multiline": True,
                    "max_length": MAX_REASON,
                },
            },
        ],
    }


def render_cancelled() -> dict[str, Any]:
    text = "Cancelled; nothing was changed."
    return bk.message(text, [bk.section(text)])


def used_sentence(op: Action, session_id: str, use: str | None) -> str:
    """Why a prompt's button no longer works: what its token was already used for."""
    if use == "cancelled":
        return (
            f"This {op} was cancelled, so it will not run. Ask again with `{op} {session_id}` "
            "for a new prompt."
        )
    if use == "sent":
        return (
            f"This {op} was sent to a second person for approval; follow the request in the "
            "channel, or withdraw it there."
        )
    if use == "replanned":
        return REPLANNED
    return f"This {op} was already approved once; it does not run twice."


def cancel_too_late_sentence(use: str | None) -> str:
    """Cancel on a prompt whose token was already used."""
    if use == "cancelled":
        return "This request was already cancelled; nothing to cancel."
    if use == "sent":
        return (
            "This request was already sent for approval; nothing to cancel here. Withdraw it "
            "on the request in the channel."
        )
    if use == "replanned":
        return REPLANNED
    return "This request was already approved; nothing to cancel."


REPLANNED = (
    "This preview's plan was changed since, so its buttons no longer work; use the preview "
    "with the new plan, or type the command again."
)
