"""`restart|stop|update <filters>`: a fleet run. The preview (commands.fleet_preview)
freezes the target set under a run id and lets the requester change the plan; the approval
is the same as for one agent (two-person if any target needs it), and the run itself is
driven by durable jobs in commands.fleet_exec. Also the progress message's Pause / Resume /
Cancel and `jobs`.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.deps import Deps
from bot.policy import approval_mode_for_request, may_view
from bot.slack.invocation import Invocation
from bot.slack.views.approvals import REPLANNED
from bot.slack.views.errors import render_error
from bot.slack.views.fleet import (
    RunLine,
    render_run_notice,
    render_run_request,
    render_runs,
)
from bot.state.approvals import consume_approval, how_used, issue_token
from bot.state.runs import (
    ACTIVE_STATES,
    FleetRun,
    agent_outcomes,
    all_runs,
    load_run,
    load_targets,
    move_run,
)
from commands.approval import JOB_EXPIRE_RUN, may_click, verify_click
from commands.fleet_exec import JOB_FLEET_TICK, progress_of, publish_progress, start_chain
from commands.fleet_preview import (
    RUN_TOKEN_PREFIX,
    change_plan,
    frozen_plan,
    preview_of,
)

log = logging.getLogger("ngrok_ops.fleet")

JOB_RUN_CLICK = "run_click"


def _run_of_token(
    inv: Invocation, deps: Deps, token: str, kinds: set[str]
) -> tuple[Any, FleetRun] | None:
    claims = verify_click(inv, deps, token, kinds)
    if claims is None:
        return None
    target = claims.targets[0]
    run = load_run(deps.store, target.removeprefix(RUN_TOKEN_PREFIX))
    if not target.startswith(RUN_TOKEN_PREFIX) or run is None:
        inv.private(render_error("This run is no longer known; preview it again."))
        return None
    return claims, run


def approve_run(inv: Invocation, deps: Deps, token: str) -> None:
    """Approve run on the requester's own preview: starts the run once."""
    found = _run_of_token(inv, deps, token, {"self"})
    if found is None:
        return
    claims, run = found
    if not may_click(inv, deps, claims, mode="self"):
        return
    targets = load_targets(deps.store, run.id)
    if approval_mode_for_request(deps.config, run.action, targets) != "self":
        inv.replace(
            render_error(f"This {run.action} run now needs a second person; preview it again.")
        )
        return
    if not consume_approval(deps.store, claims, now=deps.clock()):
        inv.private(render_error(_used(how_used(deps.store, claims), "approved once")))
        return
    where = Invocation(
        entry="action", user_id=inv.user_id, channel_id=run.channel, thread_ts=run.thread_ts,
        client=inv.client,
    )  # fmt: skip
    started = _start(deps, run, "planned", approver=inv.user_id, where=where)
    if started is not None:
        inv.replace(render_run_notice(f"Run `{run.id}` started; its progress is in the channel."))


def _start(
    deps: Deps, run: FleetRun, expect: str, *, approver: str, where: Invocation,
    progress_ts: str | None = None,
) -> FleetRun | None:  # fmt: skip
    """planned/requested -> running, the progress message, and the first tick."""
    moved = move_run(deps.store, run, "running", approver=approver, beat=deps.clock())
    if moved is None or run.state != expect:
        return None
    deps.auditor.record(
        "approved", actor=approver, approver=approver, action=run.action, session_id=run.key,
        run_id=run.id, requester=run.requester, channel=run.channel, filter=run.query_text,
        count=run.count,
    )  # fmt: skip
    message = publish_progress(
        deps,
        moved,
        agent_outcomes(deps.store, run.id),
        force=True,
        post=progress_ts is None,
        where=where,
    )
    ts = progress_ts or message
    current = load_run(deps.store, run.id)
    if current is not None and ts:
        move_run(deps.store, current, current.state, progress_ts=ts)
    start_chain(deps, run.id)
    return moved


def ask_run_approval(inv: Invocation, deps: Deps, token: str) -> None:
    """Request approval on a two-person preview: posts the public request once."""
    found = _run_of_token(inv, deps, token, {"ask"})
    if found is None:
        return
    claims, run = found
    if inv.user_id != claims.requester:
        inv.private(render_error("Only the person who asked for this can send it for approval."))
        return
    if not consume_approval(deps.store, claims, now=deps.clock()):
        inv.private(render_error(_used(how_used(deps.store, claims), "sent for approval")))
        return
    moved = move_run(deps.store, run, "requested")
    if moved is None:
        return
    two_person, _ = issue_token(
        secret=deps.settings.approval_secret, action=run.action,
        targets=[RUN_TOKEN_PREFIX + run.id], requester=run.requester, channel=run.channel,
        thread_ts=run.thread_ts, ttl_seconds=deps.config.approval_ttl_seconds,
        kind="two-person", now=deps.clock(), epoch=deps.store.epoch(), request_id=run.key,
    )  # fmt: skip
    # The approver sees the plan as recorded when the state moved: the requester's last.
    preview = preview_of(deps, moved, frozen_plan(deps, moved))
    approvers = " ".join(
        f"<@{m}>" if m.startswith(("U", "W")) else f"<!subteam^{m}>"
        for m in sorted(deps.config.roles.get("approver", frozenset()))
        if m != "*"
    )
    where = Invocation(
        entry="action", user_id=inv.user_id, channel_id=run.channel, thread_ts=run.thread_ts,
        client=inv.client,
    )  # fmt: skip
    ts = where.public(
        render_run_request(
            preview,
            requester_id=run.requester,
            approvers=approvers,
            approve_value=two_person,
            deny_value=two_person,
        )
    )
    if ts:
        move_run(deps.store, moved, "requested", progress_ts=ts)
    deps.jobs.later(deps.config.approval_ttl_seconds, JOB_EXPIRE_RUN, {"run_id": run.id})
    inv.replace(
        render_run_notice("Approval requested in the channel; an approver must approve it.")
    )


def decide_run(inv: Invocation, deps: Deps, token: str, *, approve: bool) -> None:
    """Approve run / Deny on the public request: the approver's rights now, exactly once."""
    found = _run_of_token(inv, deps, token, {"two-person"})
    if found is None:
        return
    claims, run = found
    if not may_click(inv, deps, claims, mode="two-person", account=run.account):
        return
    if run.state != "requested" or not consume_approval(deps.store, claims, now=deps.clock()):
        inv.private(render_error(f"This run was already decided ({run.state})."))
        return
    if not approve:
        denied = move_run(deps.store, run, "denied", approver=inv.user_id)
        if denied is not None:
            deps.auditor.record(
                "denied", actor=inv.user_id, action=run.action, session_id=run.key,
                run_id=run.id, requester=run.requester, channel=run.channel,
            )  # fmt: skip
            publish_progress(deps, denied, {}, force=True)
        return
    where = Invocation(
        entry="action", user_id=inv.user_id, channel_id=run.channel, thread_ts=run.thread_ts,
        client=inv.client,
    )  # fmt: skip
    _start(deps, run, "requested", approver=inv.user_id, where=where, progress_ts=run.progress_ts)


# --- the progress message's controls --------------------------------------------------------


def control_run(inv: Invocation, deps: Deps, run_id: str, kind: str) -> None:
    """Pause, Resume or Cancel; the clicker must be the requester, the approver, or an
    approver now (rights checked at the click)."""
    run = load_run(deps.store, run_id)
    if run is None:
        inv.private(render_error("This run is no longer known."))
        return
    if inv.channel_id and inv.channel_id != run.channel:
        inv.private(render_error("This button belongs to another channel; nothing was done."))
        return
    roles = deps.roles(inv.user_id)
    own = inv.user_id in (run.requester, run.approver) and bool(roles & {"operator", "approver"})
    if not (own or "approver" in roles):
        inv.private(
            render_error(
                "Only the person who asked for this run, its approver or an approver can "
                f"{kind} it."
            )
        )
        deps.auditor.record(
            "refused", actor=inv.user_id, action=run.action, session_id=run.key,
            run_id=run.id, detail=f"{kind} without rights",
        )  # fmt: skip
        return
    wanted = {"pause": ("running", "paused"), "resume": ("paused", "running"),
              "cancel": (None, "cancelling")}[kind]  # fmt: skip
    if (wanted[0] and run.state != wanted[0]) or (
        kind == "cancel" and run.state not in ("running", "paused")
    ):
        inv.private(render_error(f"This run is {run.state}; it cannot {kind} now."))
        return
    moved = move_run(deps.store, run, wanted[1])
    if moved is None:
        inv.private(render_error("Someone changed this run at the same moment; look again."))
        return
    deps.auditor.record(
        kind + "d" if kind != "cancel" else "cancelled", actor=inv.user_id, action=run.action,
        session_id=run.key, run_id=run.id,
    )  # fmt: skip
    if kind == "pause":
        publish_progress(deps, moved, agent_outcomes(deps.store, run.id), force=True)
    else:
        start_chain(deps, run.id)


def show_runs(inv: Invocation, deps: Deps) -> None:
    """`jobs`: running runs first, then recent ones, each with a button to its progress."""
    decision = may_view(deps.config, deps.roles(inv.user_id), inv.channel_id)
    if not decision.allowed:
        inv.private(render_error(decision.reason))
        return
    runs = all_runs(deps.store)
    runs.sort(key=lambda r: (r.state not in ACTIVE_STATES, -r.created))
    lines = []
    for run in runs[:20]:
        progress = progress_of(deps, run, agent_outcomes(deps.store, run.id))
        counts = (
            f"done {progress.done}, failed {progress.failed}, skipped {progress.skipped}, "
            f"remaining {progress.remaining}"
        )
        lines.append(
            RunLine(
                run.id,
                run.action,
                run.state,
                run.query_text,
                run.count,
                run.requester,
                progress_link(deps, run),
                counts,
            )
        )
    inv.answer(render_runs(lines))


def progress_link(deps: Deps, run: FleetRun) -> str | None:
    """The permalink of the run's progress message, from chat.getPermalink once and then
    from the run record; None when the run has no message (yet) or Slack gave no link."""
    if run.progress_url or not run.progress_ts:
        return run.progress_url or None
    try:
        answer = deps.slack.chat_getPermalink(channel=run.channel, message_ts=run.progress_ts)
    except SlackApiError as error:
        log.warning("no permalink for run %s: %s", run.id, error.response.get("error"))
        return None
    link = answer.get("permalink")
    if not isinstance(link, str) or not link.startswith("https://"):
        return None
    move_run(deps.store, run, run.state, progress_url=link)  # lost to a race: asked again
    return link


def expire_run(deps: Deps, payload: dict[str, Any]) -> None:
    """A two-person run nobody decided in time: its public request reads "expired". Runs as
    a job at the expiry time, and from a late click; a no-op once the run was decided."""
    run = load_run(deps.store, str(payload["run_id"]))
    if run is None or run.state != "requested":
        return
    expired = move_run(deps.store, run, "expired")
    if expired is None:
        return  # decided (or expired) by someone else first
    deps.auditor.record(
        "expired", actor=run.requester, action=run.action, session_id=run.key, run_id=run.id,
        requester=run.requester, channel=run.channel,
    )  # fmt: skip
    publish_progress(deps, expired, {}, force=True)


def _used(use: str | None, already: str) -> str:
    """Why a preview's Approve or Request approval does nothing: its token was used."""
    if use == "replanned":
        return REPLANNED
    if use == "cancelled":
        return "This run was cancelled, so it will not run; type the command again."
    return f"This run was already {already}; it does not run twice."


def run_click(deps: Deps, payload: dict[str, Any]) -> None:
    """Every run button, in the consumer."""
    inv = Invocation.from_data(payload["inv"], deps.slack)
    kind, value = str(payload.get("kind")), str(payload.get("value") or "")
    if kind == "approve":
        approve_run(inv, deps, value)
    elif kind == "ask":
        ask_run_approval(inv, deps, value)
    elif kind in ("tp_approve", "deny"):
        decide_run(inv, deps, value, approve=kind == "tp_approve")
    elif kind in ("pause", "resume", "cancel"):
        control_run(inv, deps, value[:40], kind)
    elif kind == "plan":
        change_plan(inv, deps, value)


__all__ = ["JOB_FLEET_TICK", "run_click", "show_runs"]
