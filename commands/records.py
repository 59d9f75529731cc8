"""The one public record of an approved single action, moved as the action moves.

A self-approved action's record is a message of its own, posted when it is approved
(`commands.approve`) and edited by `chat.update`; a two-person action's record is its public
request (`commands.two_person`). Either way its ts is kept in the action's store record
(`record_ts`), and what follows the action (the update's restart, the agent's new id) is
posted in its thread. ngrok's 204 only acknowledges a POST, so the record says "done" only
once a read shows the effect: the restarted agent back under a new id (an update's: on a
newer version), a stopped session gone; otherwise it says the effect was not confirmed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from slack_sdk.errors import SlackApiError

from bot.deps import Deps
from bot.ngrok.models import TunnelSession, as_action
from bot.slack.views.action_record import RecordState, render_action_record
from bot.slack.views.approvals import (
    NoticeState,
    TwoPersonState,
    render_requester_notice,
    render_two_person_request,
)
from bot.state.requests import TwoPersonRequest

log = logging.getLogger("ngrok_ops.records")

ACTION_PREFIX = "action:"


def thread_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """Where what follows an action goes: the thread it was asked in, else the thread of
    its public record (as `Invocation.to_data`; no placeholder of the original click)."""
    where = dict(record["where"])
    thread = where.get("thread_ts") or record.get("record_ts")
    return {**where, "thread_ts": thread, "placeholder": "none", "placeholder_ts": None}


def state_after(record: Mapping[str, Any], *, ok: bool, up_to_date: bool = False) -> RecordState:
    """The record's state once its POST came back: a 204 is only an acknowledgement, so a
    restart or stop waits for a read (commands.approval.report_successor), and an update
    for its restart."""
    if not ok:
        return "failed"
    if up_to_date:
        return "up_to_date"
    if not record.get("follow_up", True):
        return "done"  # a fleet run's per-agent action: no record, the run checks it
    if record["action"] == "update":
        session = TunnelSession.from_api(record["session"])
        return "manual_restart" if session.is_windows else "restarting"
    return "waiting"


def settle_record(
    deps: Deps,
    record: Mapping[str, Any],
    state: RecordState,
    *,
    detail: str = "",
    seconds: float | None = None,
    successor: TunnelSession | None = None,
    waited_seconds: float = 0.0,
) -> None:
    """Moves the action's public record to `state`; a record without one (a fleet run's
    per-agent actions) is left alone. A failed edit is logged; the store has the state.
    `successor` is the agent's new session once a read saw it, `waited_seconds` how long
    reads looked for the effect before giving up (`unconfirmed`)."""
    if record.get("two_person"):
        _settle_request(
            deps, record, state, detail=detail, seconds=seconds, successor=successor,
            waited_seconds=waited_seconds,
        )  # fmt: skip
        return
    ts, action = record.get("record_ts"), as_action(str(record.get("action")))
    if not ts or action is None:
        return
    message = render_action_record(
        action, TunnelSession.from_api(record["session"]), state=state,
        requester_id=str(record["fields"].get("requester") or ""),
        approver_id=str(record["approver"]), elapsed_seconds=seconds, detail=detail,
        restart_in=deps.settings.update_restart_delay, successor=successor,
        waited_seconds=waited_seconds,
    )  # fmt: skip
    try:
        deps.slack.chat_update(channel=record["where"]["channel_id"], ts=ts, **message)
    except SlackApiError as error:
        reason = error.response.get("error")
        log.warning("could not edit the record of %s: %s", record["id"], reason)


def finish_parent(deps: Deps, record: Mapping[str, Any], *, ok: bool, detail: str) -> None:
    """The restart that finishes an update went through (or not): the update's record waits
    for its agent to come back on the new version (or failed) now."""
    parent_key = record.get("parent")
    parent = deps.store.get_request(str(parent_key)) if parent_key else None
    if parent is None:
        return
    if ok:
        settle_record(deps, parent, "waiting")
    else:
        why = f"updated, but the restart that finishes it failed: {detail}"
        settle_record(deps, parent, "failed", detail=why)


def _settle_request(
    deps: Deps, record: Mapping[str, Any], state: RecordState, *, detail: str,
    seconds: float | None, successor: TunnelSession | None, waited_seconds: float,
) -> None:  # fmt: skip
    """The two-person request as the action's record: edited while it runs, then moved once
    (compare-and-set from "running") to done or failed, the requester told how it ended."""
    raw = deps.store.get_request(str(record["fields"].get("request_id") or ""))
    if raw is None:
        return
    request = TwoPersonRequest.from_record(raw)
    actor = raw.get("decided_by")
    if state in ("running", "restarting", "waiting"):
        edit_request(
            deps, request, state, actor_id=actor, elapsed_seconds=seconds,
            restart_in=deps.settings.update_restart_delay,
        )  # fmt: skip
        return
    # Only a confirmed effect is "done" in the store; an unconfirmed one is not.
    final: Literal["done", "failed"] = "done" if state in ("done", "up_to_date") else "failed"
    done = deps.store.transition_request(
        request.id, expect_state="running", new_state=final, changes={}
    )
    if done is None:
        return  # already settled (by recovery, or a second delivery)
    finished = TwoPersonRequest.from_record(done)
    shown = _REQUEST_STATE.get(state, final)
    after = {"successor": successor, "waited_seconds": waited_seconds}
    up_to_date = state == "up_to_date"
    edit_request(
        deps, finished, shown, actor_id=actor, detail=detail, elapsed_seconds=seconds,
        up_to_date=up_to_date, **after,
    )  # fmt: skip
    notify_requester(
        deps, finished, shown, actor_id=actor, detail=detail, up_to_date=up_to_date, **after
    )


# How a settled record reads on the public request and in the requester's notice, where
# the store keeps only done or failed.
_REQUEST_STATE: dict[RecordState, Literal["unconfirmed", "not_updated"]] = {
    "unconfirmed": "unconfirmed",
    "not_updated": "not_updated",
}


def edit_request(
    deps: Deps, request: TwoPersonRequest, state: TwoPersonState, **extra: Any
) -> None:
    """Edits the public request in place; a failed edit is logged, the state is in the store."""
    if not request.ts:
        return
    try:
        deps.slack.chat_update(
            channel=request.channel,
            ts=request.ts,
            **render_two_person_request(request, state=state, **extra),
        )
    except SlackApiError as error:
        log.warning("could not edit request %s: %s", request.id, error.response.get("error"))


def notify_requester(
    deps: Deps, request: TwoPersonRequest, state: NoticeState, **details: Any
) -> None:
    """Tells the requester of a two-person request privately (a DM from the bot) how it
    went; a failed DM is logged, the public request still shows the state."""
    try:
        deps.slack.chat_postMessage(
            channel=request.requester,
            unfurl_links=False,
            **render_requester_notice(request, state, **details),
        )
    except SlackApiError as error:
        log.warning(
            "could not tell %s about request %s: %s",
            request.requester, request.id, error.response.get("error"),
        )  # fmt: skip
