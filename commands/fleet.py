"""`restart|stop|update <filters>`: a fleet run. The preview freezes the target set under a
run id (the button signs the run id, not hundreds of targets), the approval is the same as
for one agent (two-person if any target needs it), and the run itself is driven by durable
jobs in commands.fleet_exec. Also the progress message's Pause / Resume / Cancel and `jobs`.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.deps import Deps
from bot.ngrok.errors import NgrokError
from bot.ngrok.hosts import host_of
from bot.policy import approval_mode_for_request, may_request, may_view
from bot.slack.invocation import Invocation
from bot.slack.views.approvals import format_expiry
from bot.slack.views.errors import render_error
from bot.slack.views.fleet import (
    RunLine,
    RunPreview,
    render_run_notice,
    render_run_preview,
    render_run_request,
    render_runs,
)
from bot.state.approvals import consume_approval, issue_token
from bot.state.runs import (
    ACTIVE_STATES,
    FleetRun,
    agent_outcomes,
    all_runs,
    load_run,
    load_targets,
    move_run,
    new_run_id,
    save_new_run,
)
from commands.approval import JOB_EXPIRE_RUN, may_click, verify_click
from commands.explain import explain
from commands.fleet_exec import JOB_FLEET_TICK, progress_of, publish_progress, start_chain
from commands.fleet_plan import (
    RunPlan,
    breakdown,
    estimate_seconds,
    plan_run,
    requests_needed,
)
from commands.grammar import CONFIRM_OVER, FleetAction
from commands.sessions import scan_sessions

log = logging.getLogger("ngrok_ops.fleet")

RUN_TOKEN_PREFIX = "run:"
JOB_RUN_CLICK = "run_click"


def preview_of(deps: Deps, run: FleetRun, plan: RunPlan) -> RunPreview:
    settings = deps.settings
    batches = plan.batches
    keys = deps.config.host_keys
    hosts = [h for t in plan.targets if (h := host_of(t, keys))]
    return RunPreview(
        run_id=run.id,
        action=run.action,
        query_text=run.query_text,
        count=len(plan.targets),
        breakdown=breakdown(plan.targets),
        sample_hosts=hosts[:8],
        skipped=Counter(s.reason for s in plan.skipped),
        canary=plan.canary,
        batch=plan.batch,
        batches=len(batches),
        max_failures=run.max_failures,
        requests=requests_needed(run.action, batches),
        eta_seconds=estimate_seconds(
            run.action,
            batches,
            max_requests=settings.ngrok_max_requests,
            per_seconds=settings.ngrok_window_seconds,
            update_delay=settings.update_restart_delay,
        ),
        update_delay=settings.update_restart_delay,
        newest_version=plan.newest_version,
    )


def preview_run(inv: Invocation, deps: Deps, command: FleetAction) -> None:
    """Scans, plans and freezes the run; shows the requester the preview with its buttons."""
    action = command.action
    decision = may_request(deps.config, deps.roles(inv.user_id), action, inv.channel_id)
    if not decision.allowed:
        inv.private(render_error(decision.reason))
        return
    bound = deps.ngrok_for(inv.channel_id)
    if bound is None:
        inv.private(render_error(f"No ngrok account is configured for channel {inv.channel_id}."))
        return
    account, client = bound
    query = command.query
    try:
        matched = scan_sessions(deps, inv.channel_id, query)
        fleet = deps.fleet.get(account.name, None, lambda: list(client.iter_sessions()))
    except NgrokError as error:
        inv.private(render_error(explain(error)))
        return
    described = query.describe().replace(f"limit={query.limit}", "").strip()
    if not matched:
        inv.private(
            render_error(f"No online agent matches `{described or 'all'}`; nothing to {action}.")
        )
        return
    plan = plan_run(action, matched, fleet, command.options, deps.config.host_keys)
    if not plan.targets:
        reasons = ", ".join(sorted({s.reason for s in plan.skipped}))
        inv.private(render_error(f"All {len(matched)} matching agents are skipped ({reasons})."))
        return
    count = len(plan.targets)
    if count > CONFIRM_OVER and command.options.confirm != count:
        inv.private(
            render_error(
                f"This {action} would touch {count} agents, more than {CONFIRM_OVER}; type the "
                f"command again with `confirm={count}` to preview it."
            )
        )
        return
    mode = approval_mode_for_request(deps.config, action, plan.targets)
    run = FleetRun(
        id=new_run_id(), state="planned", action=action, account=account.name,
        requester=inv.user_id, channel=inv.channel_id, thread_ts=inv.thread_ts,
        query_text=described, count=count,
        skipped=[{"session_id": s.session_id, "host": s.host, "reason": s.reason}
                 for s in plan.skipped],
        canary=plan.canary, batch=plan.batch, max_failures=command.options.max_failures,
        mode=mode, created=deps.clock(),
    )  # fmt: skip
    save_new_run(deps.store, run, list(plan.targets))
    ttl = deps.config.approval_ttl_seconds
    token, _ = issue_token(
        secret=deps.settings.approval_secret, action=action, targets=[RUN_TOKEN_PREFIX + run.id],
        requester=inv.user_id, channel=inv.channel_id, thread_ts=inv.thread_ts,
        ttl_seconds=ttl, kind="self" if mode == "self" else "ask", now=deps.clock(),
        epoch=deps.store.epoch(),
    )  # fmt: skip
    inv.private(
        render_run_preview(
            preview_of(deps, run, plan),
            approve_value=token,
            cancel_value=token,
            two_person=mode == "two-person",
            ttl_text=format_expiry(ttl),
        )
    )
    deps.auditor.record(
        "requested", actor=inv.user_id, action=action, session_id=run.key, run_id=run.id,
        requester=inv.user_id, channel=inv.channel_id, mode=mode, filter=described,
        count=count, skipped=len(plan.skipped),
    )  # fmt: skip


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


def _plan_again(deps: Deps, run: FleetRun) -> RunPlan:
    targets = tuple(load_targets(deps.store, run.id))
    return RunPlan(run.action, targets, (), run.canary, run.batch, None)


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
        inv.private(render_error("This run was already approved once; it does not run twice."))
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
        inv.private(render_error("This run was already sent for approval."))
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
    plan = _plan_again(deps, run)
    preview = preview_of(deps, run, plan)
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


__all__ = ["JOB_FLEET_TICK", "preview_run", "run_click", "show_runs"]
