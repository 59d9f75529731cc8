"""Running an approved action against the ngrok API, exactly once, and learning its outcome.

The POST is sent once (the client never re-sends a POST that may have reached ngrok); what
follows only reads: after a restart the agent comes back with a new session id, which is
found by its credential, IP and metadata so the record can name it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.ngrok.cel import SessionFilter
from bot.ngrok.client import NgrokClient
from bot.ngrok.errors import NgrokError, is_no_update_available
from bot.ngrok.models import Action, TunnelSession
from commands.explain import explain

log = logging.getLogger("ngrok_ops.execute")


@dataclass(frozen=True)
class Outcome:
    """What came back: `ok`, one sentence for people, and how long the call took."""

    ok: bool
    sentence: str
    seconds: float
    error_code: str | None = None
    may_have_been_applied: bool = False
    up_to_date: bool = False  # an update ngrok answered "no update available": nothing to do


DONE: dict[Action, str] = {
    "restart": "The agent is restarting; it comes back with a new session id.",
    "stop": "The agent was told to stop; it exits and does not come back on its own.",
    "update": "The agent is installing the latest minor version.",
}

UP_TO_DATE = "The agent is already up to date (ngrok: no update available); nothing was changed."


def run_action(
    client: NgrokClient,
    op: Action,
    session_id: str,
    *,
    clock: Callable[[], float] = time.monotonic,
    urgent: bool = True,
) -> Outcome:
    """Sends the one POST for an approved action and explains the result; a fleet run's
    POSTs pass `urgent=False` and wait behind people's single actions."""
    started = clock()
    try:
        client.act(op, session_id, urgent=urgent)
    except NgrokError as error:
        if op == "update" and is_no_update_available(error):
            return Outcome(
                ok=True, sentence=UP_TO_DATE, seconds=clock() - started,
                error_code=error.error_code, up_to_date=True,
            )  # fmt: skip
        return Outcome(
            ok=False,
            sentence=explain(error, action=op, session_id=session_id),
            seconds=clock() - started,
            error_code=error.error_code,
            may_have_been_applied=error.may_have_been_applied,
        )
    except Exception:
        # A bug after the POST left: the record must still say what is (not) known.
        log.exception("unexpected error while sending %s for %s", op, session_id)
        return Outcome(
            ok=False,
            sentence=(
                f"An unexpected error interrupted the {op}; it may have been applied. "
                "Check the session list before trying again."
            ),
            seconds=clock() - started,
            may_have_been_applied=True,
        )
    return Outcome(ok=True, sentence=DONE[op], seconds=clock() - started)


def is_successor(old: TunnelSession, candidate: TunnelSession) -> bool:
    """The same agent after a restart: a new id, same credential, IP and metadata."""
    return (
        candidate.id != old.id
        and candidate.credential.id == old.credential.id
        and candidate.ip == old.ip
        and candidate.metadata == old.metadata
        and (old.started_at is None or candidate.started_at is None or candidate.id > old.id)
    )


def find_successor_once(
    client: NgrokClient, old: TunnelSession, *, urgent: bool = False
) -> TunnelSession | None:
    """One look through the (IP-filtered) list for the restarted agent; None when it is not
    there (yet) or the list could not be read (only naming the new id is at stake)."""
    cel = SessionFilter(ips=(old.ip,)).to_cel() if old.ip else None
    try:
        for candidate in client.iter_sessions(filter=cel, urgent=urgent):
            if is_successor(old, candidate):
                return candidate
    except NgrokError as error:
        log.info("looking for the restarted agent of %s failed: %s", old.id, error)
    return None
