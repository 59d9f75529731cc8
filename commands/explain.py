"""One clear sentence for every way an ngrok call can fail.

The user learns what happened and what to do next. Sentences are plain text: the renderers
in bot.views escape them (the API's text is untrusted), and the client already redacted it.
"""

from __future__ import annotations

import math

from bot.ngrok.errors import (
    AgentFailed,
    BadRequest,
    ConnectFailed,
    MayHaveBeenApplied,
    NgrokError,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
    Unsupported,
)

LIST_HINT = "Type `/ngrok sessions` (or mention me with `sessions` in a thread) to see the list."


def explain(error: NgrokError, *, action: str | None = None, session_id: str | None = None) -> str:
    """The sentence shown in Slack for an ngrok failure."""
    what = f"`{session_id}`" if session_id else "the session"
    reason = error.message.rstrip(".")
    if isinstance(error, NotFound):
        return (
            f"Session {what} is no longer online: it already stopped, or restarted with a new "
            f"id. {LIST_HINT}"
        )
    if isinstance(error, RateLimited):
        wait = math.ceil(error.retry_after) if error.retry_after else 60
        return (
            f"The ngrok API is rate limiting this account; nothing was done. Try again in {wait} s."
        )
    if isinstance(error, Unsupported):
        return f"ngrok refused to {action or 'do that'}: {reason}."
    if isinstance(error, AgentFailed):
        return f"The agent reported that the {action or 'operation'} failed: {reason}."
    if isinstance(error, MayHaveBeenApplied):
        return (
            f"The ngrok API did not confirm the {action or 'operation'} on {what}, so it may "
            f"have been applied. Check the session list before trying again. {LIST_HINT}"
        )
    if isinstance(error, Unauthorized):
        return (
            "The ngrok API rejected this channel's API key; nothing was done. An admin should "
            "run `python -m bot check` and fix the key."
        )
    if isinstance(error, ConnectFailed | Unavailable):
        done = "nothing was changed" if action else "nothing was read"
        return f"The ngrok API is not answering right now ({reason}); {done}. Try again shortly."
    if isinstance(error, BadRequest):
        return f"The ngrok API rejected the request: {reason}."
    return f"The ngrok API answered with an error: {reason}."
