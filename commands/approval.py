"""The shared after-a-click machinery: verify a signed click, check the clicker's rights,
run the one POST with its records, and what follows it (the restarted agent's new id, the
restart that completes an update, a two-person request's expiry).

The verbs (request, approve, two_person) call into this module; it calls nothing upward.
The prompt's buttons carry a signed token (bot.state.approvals), so any process can check a
click; the token's nonce is consumed in the store before the single POST, which makes a
double click, a replayed payload or two processes handling one click run it exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bot.deps import Deps
from bot.ngrok.client import NgrokClient
from bot.ngrok.errors import NgrokError, NotFound
from bot.ngrok.models import Action, TunnelSession, as_action
from bot.policy import ApprovalMode, may_approve
from bot.slack.invocation import Invocation
from bot.slack.views.action_record import RecordState
from bot.slack.views.errors import render_error
from bot.slack.views.follow_ups import (
    render_successor,
    render_update_needs_manual_restart,
    render_update_restart,
)
from bot.state.approvals import ApprovalClaims, TokenError, verify_current_token
from bot.state.requests import TwoPersonRequest
from bot.state.runs import RUN_PREFIX
from bot.state.successors import remember_successor
from commands.execute import Outcome, find_successor_once, run_action
from commands.grammar import compare_versions
from commands.records import (
    ACTION_PREFIX,
    edit_request,
    finish_parent,
    notify_requester,
    settle_record,
    state_after,
    thread_of,
)

log = logging.getLogger("ngrok_ops.approval")

INVALID_BUTTON = (
    "This button is not valid here (it was altered, or signed by another installation); "
    "nothing was done."
)
EXPIRED = (
    "This approval expired; nothing was done. Ask again with `restart`, `stop` or `update` "
    "and the session id for a new prompt."
)
RESTART_SEARCH_SECONDS = 60.0
SUCCESSOR_POLL_SECONDS = 2.0
URGENT_SUCCESSOR_LOOKS = 3
ACTION_RECORD_SECONDS = 7 * 24 * 3600
# Job names: what commands.jobs registers (each in its lane, bot.jobs) and these functions
# enqueue. A look for a restarted agent is urgent while it belongs to the approved action
# (the first URGENT_SUCCESSOR_LOOKS); later looks read with the non-urgent budget, so they go
# in the normal lane, where waiting for that budget holds no urgent thread.
JOB_SUCCESSOR = "successor"
JOB_SUCCESSOR_LATE = "successor_late"
JOB_FINISH_UPDATE = "finish_update"
JOB_EXPIRE_REQUEST = "expire_request"
JOB_EXPIRE_RUN = "expire_run"  # a two-person fleet run's request (commands.fleet)


def audit_fields(
    claims: ApprovalClaims, session: TunnelSession | None, account: str | None
) -> dict[str, Any]:
    """The fields every record of one request shares."""
    return {
        "action": claims.action,
        "session_id": claims.targets[0] if claims.targets else None,
        "requester": claims.requester,
        "channel": claims.channel,
        "thread_ts": claims.thread_ts,
        "request_id": claims.request_id or claims.nonce,
        "account": account,
        "metadata": session.metadata[:300] if session and session.metadata else None,
    }


def where_claimed(inv: Invocation, claims: ApprovalClaims) -> Invocation:
    """The conversation the request was made in (clicks on ephemerals do not say)."""
    return Invocation(
        entry="action",
        user_id=inv.user_id,
        channel_id=claims.channel,
        thread_ts=claims.thread_ts,
        client=inv.client,
    )


def verify_click(inv: Invocation, deps: Deps, token: str, kinds: set[str]) -> ApprovalClaims | None:
    """The claims of a clicked button, or None after telling the clicker why not."""
    try:
        claims = verify_current_token(
            token, secret=deps.settings.approval_secret, store=deps.store, now=deps.clock()
        )
    except TokenError as error:
        if error.reason == "expired":
            expired = error.claims
            if expired is not None and (expired.request_id or "").startswith(RUN_PREFIX):
                # A fleet run's request: commands.fleet moves it (a job: no import upward).
                run_id = (expired.request_id or "").removeprefix(RUN_PREFIX)
                deps.jobs.submit(JOB_EXPIRE_RUN, {"run_id": run_id})
            elif expired is not None and expired.kind == "two-person" and expired.request_id:
                # The expiry task may not have run yet; whoever clicks late moves the
                # public request to "expired" (a no-op when already decided).
                expire_request(deps, expired.request_id)
            elif expired is not None:
                deps.auditor.record(
                    "expired", actor=inv.user_id, **audit_fields(expired, None, None)
                )
            # A private prompt is replaced; a public request keeps its record for everyone.
            reply = inv.private if "two-person" in kinds else inv.replace
            reply(render_error(EXPIRED))
        else:
            log.warning("rejected a %s approval token from %s", error.reason, inv.user_id)
            inv.private(render_error(str(error) if error.reason == "reset" else INVALID_BUTTON))
        return None
    if claims.kind not in kinds or len(claims.targets) != 1:
        log.warning("rejected a %s token on the wrong button from %s", claims.kind, inv.user_id)
        inv.private(render_error(INVALID_BUTTON))
        return None
    return claims


def may_click(
    inv: Invocation,
    deps: Deps,
    claims: ApprovalClaims,
    *,
    mode: ApprovalMode,
    account: str | None = None,
    requester_roles: frozenset[str] | None = None,
) -> bool:
    """The clicker's rights as they are now; a refusal is recorded and explained."""
    decision = may_approve(
        deps.config, deps.roles(inv.user_id), claims.requester, inv.user_id, claims.action,
        claims.channel, mode=mode, requester_roles=requester_roles,
    )  # fmt: skip
    if not decision.allowed:
        deps.auditor.record(
            "refused", actor=inv.user_id, detail=decision.reason,
            **audit_fields(claims, None, account),
        )  # fmt: skip
        inv.private(render_error(decision.reason))
    return decision.allowed


def perform(
    deps: Deps,
    where: Invocation,
    account: str,
    action: Action,
    session: TunnelSession,
    *,
    action_id: str,
    approver: str,
    fields: dict[str, Any],
    announce: Callable[[Outcome], None],
    record_ts: str | None = None,
    two_person: bool = False,
    parent: str | None = None,
) -> Outcome | None:
    """Runs one approved action exactly once: its record is created under `action_id`
    before anything is sent (a job delivered twice stops here), moved to "sending" just
    before the POST and to "sent"/"failed" after it, so a process that dies in between
    leaves a record that recovery resolves instead of repeating the POST; a "sent" record
    moves to "checked" once, when reads confirmed the effect or gave up (report_successor).
    `record_ts` is the action's public record (`two_person`: its public request), edited
    as it moves; `parent` the update whose record a finishing restart completes."""
    key = ACTION_PREFIX + action_id
    now = deps.clock()
    record = {
        "id": action_id,
        "state": "approved",
        "action": action,
        "session": session.to_api(),
        "account": account,
        "where": where.to_data(),
        "approver": approver,
        "fields": fields,
        "started": now,
        "updated": now,
        "record_ts": record_ts,
        "two_person": two_person,
        "parent": parent,
    }
    if not deps.store.create_request(key, record, ttl_seconds=ACTION_RECORD_SECONDS):
        log.warning("action %s was already started; not sending it again", action_id)
        return None
    return send_recorded(deps, key, announce)


def send_recorded(deps: Deps, key: str, announce: Callable[[Outcome], None]) -> Outcome | None:
    """The POST of a recorded, approved action, its records, and what follows a success
    (finding the restarted agent, or scheduling the restart that completes an update)."""
    claimed = deps.store.transition_request(
        key, expect_state="approved", new_state="sending", changes={"updated": deps.clock()}
    )
    if claimed is None:
        return None  # another process is sending it, or it was resolved already
    action = as_action(claimed["action"])
    session = TunnelSession.from_api(claimed["session"])
    client = deps.ngrok_clients.get(claimed["account"])
    if action is None or client is None:
        log.error("action record %s names an unknown action or account", key)
        return None
    outcome = run_action(client, action, session.id, urgent=bool(claimed.get("urgent", True)))
    deps.store.transition_request(
        key, expect_state="sending", new_state="sent" if outcome.ok else "failed",
        changes={"updated": deps.clock(), "ok": outcome.ok, "sentence": outcome.sentence,
                 "up_to_date": outcome.up_to_date},
    )  # fmt: skip
    deps.fleet.invalidate(claimed["account"])  # the list must not show the old state
    approver, fields = claimed["approver"], claimed["fields"]
    deps.auditor.record(
        "executed" if outcome.ok else "failed",
        actor=approver,
        approver=approver,
        outcome=outcome_word(outcome),
        detail=outcome.sentence,
        duration_ms=round(outcome.seconds * 1000),
        error_code=outcome.error_code,
        may_have_been_applied=outcome.may_have_been_applied or None,
        **fields,
    )
    announce(outcome)
    settle_record(
        deps, claimed, state_after(claimed, ok=outcome.ok, up_to_date=outcome.up_to_date),
        detail="" if outcome.ok else outcome.sentence, seconds=outcome.seconds,
    )  # fmt: skip
    finish_parent(deps, claimed, ok=outcome.ok, detail=outcome.sentence)
    if outcome.ok and not outcome.up_to_date and claimed.get("follow_up", True):
        # (a fleet run drives its own follow-ups)
        follow_up(deps, claimed, key.removeprefix(ACTION_PREFIX))
    return outcome


def outcome_word(outcome: Outcome) -> str:
    """The audit record's `outcome`: ok, failed, or already up to date (an update ngrok
    answered with "no update available", which changed nothing and is not a failure)."""
    if outcome.up_to_date:
        return "already up to date"
    return "ok" if outcome.ok else "failed"


def follow_up(deps: Deps, record: dict[str, Any], action_id: str) -> None:
    """What a successful action promises next, as jobs that outlive this process: reads that
    confirm a restart or stop took effect (ngrok's 204 only acknowledges it), or the
    restart that completes an update."""
    base = {
        "where": thread_of(record), "account": record["account"], "session": record["session"],
        "action": record["action"],
    }  # fmt: skip
    if record["action"] in ("restart", "stop"):
        # The record a read settles: the action's own, or for the restart that finishes an
        # update, the update's (done only once its agent runs a newer version).
        parent = record.get("parent")
        deadline = deps.clock() + RESTART_SEARCH_SECONDS
        look = {"deadline": deadline, "record": parent or ACTION_PREFIX + action_id}
        deps.jobs.submit(JOB_SUCCESSOR, {**base, **look, "expect_newer": bool(parent)})
    elif record["action"] == "update":
        deps.jobs.later(
            deps.settings.update_restart_delay,
            JOB_FINISH_UPDATE,
            {**base, "approver": record["approver"], "fields": record["fields"],
             "action_id": action_id},
        )  # fmt: skip


def report_successor(deps: Deps, payload: dict[str, Any]) -> None:
    """Looks once whether the action took effect (a restarted agent back under a new id, a
    stopped session gone); until the deadline, looks again a little later (a job, not a
    sleeping thread). Then, once (compare-and-set on the action's store record), the record
    is settled: done with the new id, or not confirmed; a restart's outcome also goes in
    the thread."""
    session = TunnelSession.from_api(payload["session"])
    client = deps.ngrok_clients.get(payload["account"])
    if client is None:
        return
    # The first looks belong to the approved action and use the reserve; later ones, for an
    # agent that is slow to come back, must not drain it.
    tries = int(payload.get("tries", 0))
    urgent = tries < URGENT_SUCCESSOR_LOOKS
    stop = payload.get("action") == "stop"
    successor = None if stop else find_successor_once(client, session, urgent=urgent)
    seen = session_gone(client, session, urgent=urgent) if stop else successor is not None
    if not seen and deps.clock() < float(payload["deadline"]):
        again = JOB_SUCCESSOR if tries + 1 < URGENT_SUCCESSOR_LOOKS else JOB_SUCCESSOR_LATE
        deps.jobs.later(SUCCESSOR_POLL_SECONDS, again, {**payload, "tries": tries + 1})
        return
    record = _conclude(deps, payload, successor, seen=seen)
    if payload.get("record") and record is None:
        return  # concluded by an earlier delivery of this job
    if successor is not None:
        remember_successor(deps.store, session.id, successor.id, at=deps.clock())
    # The record first: it was just claimed as checked, so nothing would settle it later if
    # the thread reply below failed (settle_record logs a failed edit itself).
    if record is not None:
        state = back_state(session, successor, seen=seen, newer=bool(payload.get("expect_newer")))
        started = float(record.get("started") or deps.clock())
        settle_record(
            deps, record, state, seconds=deps.clock() - started, successor=successor,
            waited_seconds=RESTART_SEARCH_SECONDS,
        )  # fmt: skip
    if not stop:
        where = Invocation.from_data(payload["where"], deps.slack)
        where.public(render_successor(session.id, successor, RESTART_SEARCH_SECONDS))


def session_gone(client: NgrokClient, session: TunnelSession, *, urgent: bool) -> bool:
    """A stopped agent's session is gone: the read answers 404. False while it is still
    online, or when ngrok cannot say (the next look asks again)."""
    try:
        client.get_session(session.id, urgent=urgent)
    except NotFound:
        return True
    except NgrokError as error:
        log.info("checking that %s has stopped failed: %s", session.id, error)
    return False


def back_state(
    old: TunnelSession, successor: TunnelSession | None, *, seen: bool, newer: bool
) -> RecordState:
    """What a look found, as the record's state: an update is done only when its agent came
    back on a newer version than it had."""
    if not seen:
        return "unconfirmed"
    if not newer or successor is None:
        return "done"
    try:
        upgraded = compare_versions(successor.agent_version, old.agent_version) > 0
    except ValueError:
        upgraded = False
    return "done" if upgraded else "not_updated"


def _conclude(
    deps: Deps, payload: dict[str, Any], successor: TunnelSession | None, *, seen: bool
) -> dict[str, Any] | None:
    """Marks the action's store record as checked, once; None for every later caller (and
    for a job queued before records were settled by reads, which names none)."""
    key = payload.get("record")
    if not key:
        return None
    return deps.store.transition_request(
        str(key), expect_state="sent", new_state="checked",
        changes={"updated": deps.clock(), "confirmed": seen,
                 "successor": successor.id if successor else None},
    )  # fmt: skip


def finish_update(deps: Deps, payload: dict[str, Any]) -> None:
    """An update only takes effect after a restart at least 10 s later; the bot does it,
    except on Windows, where the agent cannot restart itself. Both are said in the thread
    of the update's record; the restart, once through, makes that record "done"."""
    session = TunnelSession.from_api(payload["session"])
    where = Invocation.from_data(payload["where"], deps.slack)
    if session.is_windows:
        where.public(render_update_needs_manual_restart(session.id))
        return

    def announce(outcome: Outcome) -> None:
        where.public(
            render_update_restart(session.id, succeeded=outcome.ok, detail=outcome.sentence)
        )

    perform(
        deps, where, payload["account"], "restart", session,
        action_id=f"{payload['action_id']}:restart", approver=payload["approver"],
        fields={**payload["fields"], "action": "restart", "follows": "update"},
        announce=announce, parent=ACTION_PREFIX + str(payload["action_id"]),
    )  # fmt: skip


def expire_request(deps: Deps, request_id: str) -> None:
    """Moves a request that nobody decided in time to expired; a no-op once decided. Runs
    as a scheduled job at the expiry time, and from a late click if that job has not."""
    record = deps.store.transition_request(
        request_id, expect_state="requested", new_state="expired", changes={}
    )
    if record is None:
        return
    request = TwoPersonRequest.from_record(record)
    deps.auditor.record(
        "expired",
        actor=request.requester,
        action=request.action,
        session_id=request.session.id,
        requester=request.requester,
        channel=request.channel,
        request_id=request_id,
        account=request.account,
    )
    edit_request(deps, request, "expired")
    notify_requester(deps, request, "expired")
