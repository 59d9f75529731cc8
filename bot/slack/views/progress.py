"""The "working…" placeholders shown while an answer is not ready, replaced in place by it.

Every placeholder has the block_id `working`, so a reader (or a test) can tell it from an
answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.ngrok.models import Action
from bot.slack import blocks as bk

WORKING_BLOCK_ID = "working"
_ING: dict[Action, str] = {"restart": "Restarting", "update": "Updating", "stop": "Stopping"}


def _working(text: str) -> dict[str, Any]:
    return bk.message(text, [bk.context(f":hourglass_flowing_sand: {bk.escape(text)}")])


def render_working(what: str = "Looking up agents…") -> dict[str, Any]:
    """The first sign of life: `what` is plain text such as "Looking up agents…"."""
    message = _working(what)
    message["blocks"][0]["block_id"] = WORKING_BLOCK_ID
    return message


def render_scan_progress(page: int, estimated_pages: int | None) -> dict[str, Any]:
    """How far a long scan of the fleet got: "page 3 of ~5" once a previous scan gave a
    size, "page 3" before that."""
    of = f" of ~{estimated_pages}" if estimated_pages and estimated_pages >= page else ""
    return render_working(f"Looking up agents… page {page}{of}")


def render_action_running(action: Action, session_id: str) -> dict[str, Any]:
    """Replaces an approval prompt the moment Approve is clicked, until the result is in."""
    return render_working(f"{_ING[action]} {session_id}…")


def working_text_for(verb: str) -> str:
    """The placeholder for a typed command, by its verb."""
    return {
        "sessions": "Looking up agents…",
        "session": "Looking up the agent…",
        "audit": "Reading the audit log…",
        "help": "One moment…",
    }.get(verb, "Looking up the agent…")


def is_working(message: Mapping[str, Any]) -> bool:
    """A "working…" placeholder rather than an answer (its first block's id says so)."""
    return any(b.get("block_id") == WORKING_BLOCK_ID for b in message.get("blocks") or ())
