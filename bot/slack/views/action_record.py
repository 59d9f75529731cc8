"""The one public record of a self-approved action, posted when it is approved and edited in
place (`chat.update`) as it moves: running, then done or failed; an update first says it is
restarting and is done only once the restart that finishes it went through. What follows
(the restart, the agent's new id) goes in its thread."""

from __future__ import annotations

from typing import Any, Literal

from bot.ngrok.models import Action, TunnelSession
from bot.slack import blocks as bk
from bot.slack.views.agent_text import OP_LABEL, session_summary
from bot.slack.views.approvals import UP_TO_DATE_WORDS, who_line

RecordState = Literal["running", "restarting", "done", "failed", "up_to_date", "manual_restart"]
RECORD_STATES: tuple[RecordState, ...] = (
    "running", "restarting", "done", "failed", "up_to_date", "manual_restart",
)  # fmt: skip

_DONE: dict[Action, str] = {
    "restart": "The agent comes back with a new session id; it follows in the thread.",
    "stop": "The agent exits and does not come back on its own.",
    "update": "Updated and restarted; the agent comes back on the new version with a new "
    "session id, which follows in the thread.",
}
_WORDS: dict[RecordState, str] = {
    "running": "running",
    "restarting": "updated; restarting",
    "done": "done",
    "failed": "failed",
    "up_to_date": "already up to date",
    "manual_restart": "installed; needs a manual restart",
}


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
) -> dict[str, Any]:
    """The record in one state. `elapsed_seconds` is how long the POST took, `detail` the
    error of `failed`, `restart_in` the delay before an update's restart (`restarting`)."""
    label, target = OP_LABEL[op], bk.code_span(session.id, 60)
    who = bk.user_mention(approver_id)
    took = f" in {bk.format_elapsed(elapsed_seconds)}" if elapsed_seconds is not None else ""
    text = {
        "running": f":hourglass_flowing_sand: *{label}* of {target}: approved by {who}; running…",
        "restarting": f":hourglass_flowing_sand: *{label}* of {target}: updated{took}; "
        f"restarting in {bk.format_elapsed(restart_in)} so the new version runs…",
        "done": f":white_check_mark: *{label}* of {target} done{took}. {_DONE[op]}",
        "failed": f":x: *{label}* of {target} failed{took}: "
        + bk.clip(detail or "ngrok gave no reason", 1000),
        "up_to_date": f":white_check_mark: *{label}* of {target}: {UP_TO_DATE_WORDS}.",
        "manual_restart": f":warning: *{label}* of {target} installed{took}; Windows agents "
        "cannot restart themselves, so stop it and let the service manager start it again.",
    }[state]
    blocks = [
        bk.section(text, block_id=f"record_{state}"),
        bk.section(session_summary(session), block_id="summary"),
        bk.context(who_line(requester_id, approver_id)),
    ]
    return bk.message(f"{label} of {session.id}: {_WORDS[state]}", blocks)
