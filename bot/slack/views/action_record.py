"""The one public record of a self-approved action, posted when it is approved and edited in
place (`chat.update`) as it moves: running, then (ngrok's 204 being only an acknowledgement)
waiting until a read shows the action took effect, then done with the agent's new id and
version, or failed, or unconfirmed when no read showed it in time. An update first says it
is restarting, and waits for its agent to come back on the new version. What follows (the
restart, the agent's new id) goes in its thread too."""

from __future__ import annotations

from typing import Any, Literal

from bot.ngrok.models import Action, TunnelSession
from bot.slack import blocks as bk
from bot.slack.views.agent_text import (
    OP_LABEL,
    back_words,
    not_updated_words,
    session_summary,
    unconfirmed_words,
    waiting_words,
)
from bot.slack.views.approvals import UP_TO_DATE_WORDS, who_line

RecordState = Literal[
    "running", "restarting", "waiting", "done", "failed", "up_to_date", "manual_restart",
    "unconfirmed", "not_updated",
]  # fmt: skip
RECORD_STATES: tuple[RecordState, ...] = (
    "running", "restarting", "waiting", "done", "failed", "up_to_date", "manual_restart",
    "unconfirmed", "not_updated",
)  # fmt: skip

_WORDS: dict[RecordState, str] = {
    "running": "running",
    "restarting": "updated; restarting",
    "waiting": "sent; waiting for the agent",
    "done": "done",
    "failed": "failed",
    "up_to_date": "already up to date",
    "manual_restart": "installed; needs a manual restart",
    "unconfirmed": "sent, not confirmed",
    "not_updated": "not updated",
}


def record_words(op: Action, state: RecordState, successor: TunnelSession | None = None) -> str:
    """The record's state in a few plain words, for the notification text."""
    if state == "waiting" and op == "stop":
        return "sent; checking the session ended"
    if state == "done" and successor is not None and op != "stop":
        return f"done, back as {successor.id}"
    return _WORDS[state]


def render_action_record(
    op: Action,
    session: TunnelSession,
    *,
    state: RecordState,
    requester_id: str,
    approver_id: str,
    elapsed_seconds: float | None = None,
    detail: str = "",
    restart_in: float = 0.0,
    successor: TunnelSession | None = None,
    waited_seconds: float = 0.0,
) -> dict[str, Any]:
    """The record in one state. `elapsed_seconds` is how long the POST took (for `done`:
    from approval until a read confirmed it), `detail` the error of `failed`, `restart_in`
    the delay before an update's restart (`restarting`), `successor` the agent's new session
    (`done`, `not_updated`) and `waited_seconds` how long reads looked (`unconfirmed`)."""
    label, target = OP_LABEL[op], bk.code_span(session.id, 60)
    who = bk.user_mention(approver_id)
    took = f" in {bk.format_elapsed(elapsed_seconds)}" if elapsed_seconds is not None else ""
    text = {
        "running": f":hourglass_flowing_sand: *{label}* of {target}: approved by {who}; running…",
        "restarting": f":hourglass_flowing_sand: *{label}* of {target}: updated{took}; "
        f"restarting in {bk.format_elapsed(restart_in)} so the new version runs…",
        "waiting": f":hourglass_flowing_sand: *{label}* of {target}: {waiting_words(op, took)}",
        "done": f":white_check_mark: *{label}* of {target} done{took}: "
        + back_words(op, session, successor),
        "failed": f":x: *{label}* of {target} failed{took}: "
        + bk.clip(detail or "ngrok gave no reason", 1000),
        "up_to_date": f":white_check_mark: *{label}* of {target}: {UP_TO_DATE_WORDS}.",
        "manual_restart": f":warning: *{label}* of {target} installed{took}; Windows agents "
        "cannot restart themselves, so stop it and let the service manager start it again.",
        "unconfirmed": f":warning: *{label}* of {target}: " + unconfirmed_words(op, waited_seconds),
        "not_updated": f":warning: *{label}* of {target}: "
        + (not_updated_words(successor) if successor else "the update did not take."),
    }[state]
    blocks = [
        bk.section(text, block_id=f"record_{state}"),
        bk.section(session_summary(session), block_id="summary"),
        bk.context(who_line(requester_id, approver_id)),
    ]
    return bk.message(f"{label} of {session.id}: {record_words(op, state, successor)}", blocks)
