"""Replies that died with their consumer: nobody is left with "working…" forever.

huey has no acknowledgements, so a consumer killed with SIGKILL (OOM, a crash) while it runs
a user's job loses the job, and the placeholder the listener showed would never be
replaced. While a user-facing job runs it is therefore recorded as `reply:<id>` (state
running, its owner's ConsumerId, the invocation as data and what was asked): one write
before the job and one compare-and-set to done after it, whether it succeeded or failed
(a failure is told by `on_error` first). A consumer that starts, and one every minute, claim
each running record whose owner is dead (bot.state.consumers.is_dead) by compare-and-set
from running to lost, so exactly one of them tells the user, where the job would have
answered. The job is not run again: a command may already have posted an approval prompt.
An approved action's own phases are resolved by commands.recovery, not here.

A record lives for REPLY_TTL_SECONDS: a response_url works for 30 minutes, so telling later
could not replace the placeholder anyway.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from bot.deps import Deps
from bot.slack.invocation import Invocation
from bot.slack.views.errors import render_lost_reply
from bot.state.consumers import ConsumerId, is_dead, this_consumer
from bot.state.store import StoreError

log = logging.getLogger("ngrok_ops.lost_replies")

REPLY_PREFIX = "reply:"
REPLY_TTL_SECONDS = 3600.0
JOB_RECOVER_REPLIES = "recover_replies"
APPROVING_CLICKS = ("approve", "two_person_approve", "tp_approve")  # tp_: a fleet run's

UserJob = Callable[[Deps, dict[str, Any]], None]
OnError = Callable[[Deps, dict[str, Any], Exception], None]


def asked_in(payload: dict[str, Any]) -> str:
    """What the user asked for, as they would recognise it (raw; the view escapes it)."""
    entry = (payload.get("inv") or {}).get("entry")
    text = str(payload.get("text") or "").strip()
    if entry == "command":
        return f"/ngrok {text}".strip()
    if entry == "mention":
        return f"@ngrok-ops {text}".strip()
    if entry == "shortcut":
        return "ngrok sessions"
    kind = str(payload.get("kind") or "").replace("_", " ")
    return kind or "a button"


def begin(deps: Deps, payload: dict[str, Any]) -> str | None:
    """Records the running reply; None when there is nobody to answer or the store failed
    (the reply itself matters more than its record)."""
    inv = payload.get("inv")
    if not isinstance(inv, dict):
        return None
    reply_id = secrets.token_hex(8)
    key = REPLY_PREFIX + reply_id
    record = {
        "id": reply_id,
        "state": "running",
        "owner": this_consumer().to_data(),
        "inv": inv,
        "asked": asked_in(payload),
        "approving": payload.get("kind") in APPROVING_CLICKS,
        "started": deps.clock(),
    }
    try:
        deps.store.put_request(key, record, ttl_seconds=REPLY_TTL_SECONDS)
    except StoreError as error:
        log.warning("could not record a running reply: %s", error)
        return None
    return key


def finish(deps: Deps, key: str | None) -> None:
    if key is None:
        return
    try:
        deps.store.transition_request(
            key, expect_state="running", new_state="done", changes={"ended": deps.clock()}
        )
    except StoreError as error:
        log.warning("could not mark reply %s done: %s", key, error)


def run_kept(deps: Deps, handler: UserJob, on_error: OnError, payload: dict[str, Any]) -> None:
    """A user-facing job with its reply record around it; a failure is told (on_error) before
    the record is done, and raised again so the job engine logs it with the job's name."""
    key = begin(deps, payload)
    try:
        handler(deps, payload)
    except Exception as error:
        on_error(deps, payload, error)
        raise
    finally:
        finish(deps, key)


def recover_replies(deps: Deps, payload: dict[str, Any]) -> None:
    """At every consumer start (before new work) and once a minute on one consumer."""
    me, now = this_consumer(), deps.clock()
    verdicts: dict[ConsumerId, bool] = {}
    for record in deps.store.find_requests(REPLY_PREFIX):
        if record.get("state") != "running":
            continue
        owner = ConsumerId.from_data(record.get("owner"))
        if owner is not None:
            if owner not in verdicts:
                verdicts[owner] = is_dead(deps.store, owner, now, me=me)
            if not verdicts[owner]:
                continue
        claim(deps, record)


def claim(deps: Deps, record: dict[str, Any]) -> bool:
    """Moves the record from running to lost (one recoverer wins) and tells the user."""
    key = REPLY_PREFIX + str(record["id"])
    won = deps.store.transition_request(
        key, expect_state="running", new_state="lost",
        changes={"ended": deps.clock(), "claimed_by": this_consumer().to_data()},
    )  # fmt: skip
    if won is None:
        return False
    log.warning("a consumer died while answering %s; telling the user", key)
    message = render_lost_reply(
        str(record.get("asked") or ""), approving=bool(record.get("approving"))
    )
    Invocation.from_data(record.get("inv") or {}, deps.slack).answer(message)
    return True
