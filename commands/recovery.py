"""Resolving actions that a dead process left half done, without ever re-sending a POST
blindly.

Every approved action is recorded before its POST ("approved"), just before it ("sending")
and after it ("sent"/"failed"), see commands.approval.perform. A record that has stayed
"approved" or "sending" for longer than ACTION_RECOVERY_SECONDS belongs to a process that
died. "approved" means nothing was sent, so the approval is honoured now (the same
compare-and-set that guards every POST keeps it to one). "sending" means the POST may or
may not have reached ngrok, so the session is read instead: gone, or replaced by a
successor, means it ran; still there means it most likely did not. Either way the thread and
the requester are told what is known, and the action's record moves on: failed, or waiting
for the same reads as any action (commands.approval.follow_up) before it says done.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.deps import Deps
from bot.ngrok.errors import NgrokError, NotFound
from bot.ngrok.models import TunnelSession, as_action
from bot.slack.invocation import Invocation
from bot.slack.views.follow_ups import render_recovered
from commands.approval import follow_up, send_recorded
from commands.execute import find_successor_once
from commands.records import ACTION_PREFIX, finish_parent, settle_record, state_after, thread_of

log = logging.getLogger("ngrok_ops.recovery")


def recover_actions(deps: Deps, payload: dict[str, Any]) -> None:
    """Runs at every consumer start and once a minute on one consumer."""
    cutoff = deps.clock() - deps.settings.action_recovery_seconds
    for record in deps.store.find_requests(ACTION_PREFIX):
        if record.get("state") in ("approved", "sending") and record.get("updated", 0) < cutoff:
            try:
                resolve(deps, record)
            except NgrokError as error:
                log.warning("could not resolve action %s yet: %s", record.get("id"), error)


def resolve(deps: Deps, record: dict[str, Any]) -> None:
    key = ACTION_PREFIX + str(record["id"])
    where = Invocation.from_data(record["where"], deps.slack)
    if record["state"] == "approved":
        log.info("sending approved action %s that a stopped process never sent", key)
        send_recorded(
            deps,
            key,
            lambda outcome: _tell(deps, record, where, outcome.sentence, settle=False),
        )
        return
    ok, finding = _what_happened(deps, record)
    state = "sent" if ok else "unknown"
    moved = deps.store.transition_request(
        key, expect_state="sending", new_state=state,
        changes={"updated": deps.clock(), "ok": ok, "sentence": finding},
    )  # fmt: skip
    if moved is None:
        return  # another consumer resolved it first
    fields = record["fields"]
    deps.auditor.record(
        "recovered", actor=record["approver"], approver=record["approver"],
        outcome="ok" if ok else "unknown", detail=finding, **fields,
    )  # fmt: skip
    _tell(deps, record, where, finding, ok=ok)
    if ok and moved.get("follow_up", True):  # a fleet run drives its own follow-up
        follow_up(deps, moved, str(record["id"]))


def _what_happened(deps: Deps, record: dict[str, Any]) -> tuple[bool, str]:
    """(ran, one sentence) from reading the session now; NgrokError when ngrok cannot say."""
    action = as_action(str(record["action"]))
    session = TunnelSession.from_api(record["session"])
    client = deps.ngrok_clients[record["account"]]
    try:
        client.get_session(session.id, urgent=True)
    except NotFound:
        if action == "update":
            return False, (
                "The agent has gone offline since, so whether the update ran is unknown; "
                "check its host before asking again."
            )
        return True, f"The agent's session has ended since, so the {action} took effect."
    if action == "restart":
        successor = find_successor_once(client, session, urgent=True)
        if successor is not None:
            return True, f"The agent came back as {successor.id}, so the restart took effect."
    if action == "update":
        return False, (
            "ngrok did not confirm it and an update does not end the session, so whether it "
            "ran is unknown; look at the agent's version and ask again if needed."
        )
    return False, (
        f"ngrok did not confirm it and the agent is still online under the same id, so the "
        f"{action} most likely did not run; ask again if it is still needed."
    )


def _tell(
    deps: Deps, record: dict[str, Any], where: Invocation, finding: str, *, ok: bool = True,
    settle: bool = True,
) -> None:  # fmt: skip
    """The record's thread, the requester, and the action's public record (unless
    send_recorded, which moves it itself, ran the action)."""
    fields = record["fields"]
    message = render_recovered(
        record["action"], TunnelSession.from_api(record["session"]).id,
        requester_id=fields.get("requester") or "", approver_id=record["approver"],
        finding=finding,
    )  # fmt: skip
    Invocation.from_data(thread_of(record), deps.slack).public(message)
    requester = fields.get("requester")
    if requester:
        Invocation(
            entry="action", user_id=requester, channel_id=where.channel_id,
            thread_ts=where.thread_ts, client=deps.slack,
        ).private(message)  # fmt: skip
    if settle:
        settle_record(deps, record, state_after(record, ok=ok), detail="" if ok else finding)
        finish_parent(deps, record, ok=ok, detail=finding)
