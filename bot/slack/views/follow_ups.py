"""What the bot says in the thread after an action: the restarted agent's new id, the
restart that completes an update, and where a two-person request went."""

from __future__ import annotations

from typing import Any

from bot.ngrok.models import Action, TunnelSession
from bot.slack import blocks as bk


def _notice(text: str) -> dict[str, Any]:
    return bk.message(text, [bk.section(text)])


def render_successor(
    old_id: str, successor: TunnelSession | None, waited_seconds: float
) -> dict[str, Any]:
    """A restarted agent is back under a new id, or has not come back in time."""
    old = bk.code_span(old_id, 60)
    if successor is None:
        return _notice(
            f":warning: Agent {old} has not come back within {waited_seconds:.0f} s "
            "of the restart; check the agent's host."
        )
    return _notice(
        f":arrows_counterclockwise: Agent {old} is back as {bk.code_span(successor.id, 60)} "
        f"(agent version {bk.clip(successor.agent_version or '?', 40)})."
    )


def render_update_needs_manual_restart(session_id: str) -> dict[str, Any]:
    """Windows agents cannot re-exec themselves, so the update's restart is left to people."""
    return _notice(
        f"The update of {bk.code_span(session_id, 60)} is installed; Windows agents cannot "
        "restart themselves, so stop it and let the service manager start it again."
    )


def render_update_restart(session_id: str, *, succeeded: bool, detail: str) -> dict[str, Any]:
    """The restart the bot sends after an update, so the new binary runs."""
    if succeeded:
        return _notice(f"Restarted {bk.code_span(session_id, 60)} to finish its update.")
    return _notice(f"The restart that finishes the update failed: {bk.clip(detail, 1000)}")


def render_approval_requested(*, in_thread: bool) -> dict[str, Any]:
    """Replaces the requester's prompt once the public two-person request is posted."""
    place = "thread" if in_thread else "channel"
    return _notice(
        f"Approval requested in the {place}; someone with the approver role must approve it."
    )


def render_recovered(
    action: Action, session_id: str, *, requester_id: str, approver_id: str, finding: str
) -> dict[str, Any]:
    """What the bot learned about an action whose process died while sending it."""
    return _notice(
        f":warning: The bot restarted while sending the *{action}* of "
        f"{bk.code_span(session_id, 60)} (asked by {bk.user_mention(requester_id)}, approved by "
        f"{bk.user_mention(approver_id)}). {bk.clip(finding, 1000)}"
    )
