"""A fleet run's private preview: scan, plan and freeze the target set under a run id (the
buttons sign the run id, not hundreds of targets), and let the requester change the plan
(canary, batch size, when to stop) in the preview itself.

A plan change re-plans the frozen targets, never the filter, and replaces the preview in
place with the new plan and ETA. It is allowed to the requester only, and only while the
preview's token is unused: the change consumes that token (compare-and-set in the store,
like an approval) and the new preview carries a fresh one, so Approve on an older preview
cannot start a plan nobody is looking at, and a change after Approve, Request approval or
Cancel is refused in one sentence. The value picked is sealed (bot.slack.buttons) and
checked again as a typed option is (commands.grammar.parse_run_option).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from bot.deps import Deps
from bot.ngrok.errors import NgrokError
from bot.ngrok.hosts import host_of
from bot.policy import approval_mode_for_request, may_request
from bot.slack.buttons import ButtonRefused, PlanChoice, PlanOption, check_origin
from bot.slack.invocation import Invocation
from bot.slack.views.approvals import format_expiry
from bot.slack.views.errors import render_error
from bot.slack.views.fleet import (
    PlanMenu,
    RunPreview,
    plan_choice_label,
    render_run_preview,
)
from bot.state.approvals import ApprovalClaims, consume_approval, how_used, issue_token
from bot.state.runs import FleetRun, load_run, load_targets, move_run, new_run_id, save_new_run
from commands.approval import INVALID_BUTTON
from commands.explain import explain
from commands.fleet_plan import (
    RunPlan,
    Skipped,
    breakdown,
    default_batch,
    estimate_seconds,
    plan_run,
    requests_needed,
)
from commands.grammar import CONFIRM_OVER, FleetAction, ParseError, parse_run_option
from commands.sessions import scan_sessions

log = logging.getLogger("ngrok_ops.fleet")

RUN_TOKEN_PREFIX = "run:"
CANARY_CHOICES = (1, 2, 3, 5, 10, 20, 50)
BATCH_CHOICES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
MAX_FAILURES_CHOICES = (1, 2, 3, 5, 10, 25, 100)
CHANGE_TRIES = 3  # plan changes racing each other: each applies to the newest plan
_STATE_WORDS = {
    "requested": "sent for approval",
    "running": "approved",
    "paused": "approved",
    "cancelling": "approved",
    "done": "approved and has run",
    "stopped": "approved and has run",
    "cancelled": "approved and cancelled",
    "denied": "denied",
    "expired": "expired",
}


def preview_of(deps: Deps, run: FleetRun, plan: RunPlan) -> RunPreview:
    """The frozen summary the requester and the approver see."""
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


def frozen_plan(deps: Deps, run: FleetRun) -> RunPlan:
    """The plan as the run record holds it now, over the frozen targets: what a changed
    preview, the approver's request and the run itself all read."""
    targets = tuple(load_targets(deps.store, run.id))
    skipped = tuple(
        Skipped(str(s.get("session_id")), s.get("host"), str(s.get("reason"))) for s in run.skipped
    )
    return RunPlan(run.action, targets, skipped, run.canary, run.batch, run.newest_version)


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
    run_id, ttl = new_run_id(), deps.config.approval_ttl_seconds
    token, claims = issue_token(
        secret=deps.settings.approval_secret, action=action, targets=[RUN_TOKEN_PREFIX + run_id],
        requester=inv.user_id, channel=inv.channel_id, thread_ts=inv.thread_ts,
        ttl_seconds=ttl, kind="self" if mode == "self" else "ask", now=deps.clock(),
        epoch=deps.store.epoch(),
    )  # fmt: skip
    run = FleetRun(
        id=run_id, state="planned", action=action, account=account.name,
        requester=inv.user_id, channel=inv.channel_id, thread_ts=inv.thread_ts,
        query_text=described, count=count,
        skipped=[{"session_id": s.session_id, "host": s.host, "reason": s.reason}
                 for s in plan.skipped],
        canary=plan.canary, batch=plan.batch, max_failures=command.options.max_failures,
        mode=mode, created=deps.clock(), preview=_preview_record(claims),
        newest_version=plan.newest_version,
    )  # fmt: skip
    save_new_run(deps.store, run, list(plan.targets))
    inv.private(render_preview(deps, run, plan, token, ttl))
    deps.auditor.record(
        "requested", actor=inv.user_id, action=action, session_id=run.key, run_id=run.id,
        requester=inv.user_id, channel=inv.channel_id, mode=mode, filter=described,
        count=count, skipped=len(plan.skipped),
    )  # fmt: skip


def render_preview(
    deps: Deps, run: FleetRun, plan: RunPlan, token: str, ttl_seconds: float
) -> dict[str, Any]:
    """The private preview of `run` as planned now, its buttons carrying `token`."""
    return render_run_preview(
        preview_of(deps, run, plan),
        approve_value=token,
        cancel_value=token,
        two_person=run.mode == "two-person",
        ttl_text=format_expiry(max(int(ttl_seconds), 1)),
        menus=plan_menus(deps, run, plan),
    )


def plan_menus(deps: Deps, run: FleetRun, plan: RunPlan) -> list[PlanMenu]:
    """The three menus of the preview, each with the plan's current value chosen."""
    count = len(plan.targets)
    rest = max(count - plan.canary, 1)
    values: dict[PlanOption, tuple[int | None, Sequence[int | None]]] = {
        "canary": (plan.canary, [n for n in CANARY_CHOICES if n <= count]),
        "batch": (plan.batch, [*(n for n in BATCH_CHOICES if n < rest), default_batch(rest), rest]),
        "max_failures": (run.max_failures, [None, *MAX_FAILURES_CHOICES]),
    }
    menus = []
    for option, (current, offered) in values.items():
        choices: list[int | None] = sorted(
            {*offered, current}, key=lambda n: -1 if n is None else n
        )
        sealed = [
            (
                plan_choice_label(option, n),
                PlanChoice(run.id, option, "" if n is None else str(n), run.channel).seal(
                    deps.settings.approval_secret
                ),
            )
            for n in choices
        ]
        menus.append(PlanMenu(option, sealed, choices.index(current)))
    return menus


def change_plan(inv: Invocation, deps: Deps, raw: str) -> None:
    """A choice in one of the preview's plan menus: the same frozen targets re-planned, the
    preview replaced in place (see the module docstring for who may, and until when)."""
    try:
        choice = PlanChoice.unseal(raw, deps.settings.approval_secret)
        check_origin(choice.channel_id, inv.channel_id)
    except ValueError as error:
        sentence = error.sentence if isinstance(error, ButtonRefused) else INVALID_BUTTON
        log.warning("refused a plan choice from %s: %s", inv.user_id, error)
        inv.private(render_error(sentence))
        return
    try:
        value = None if choice.value == "" else parse_run_option(choice.option, choice.value)
    except ParseError as error:
        inv.private(render_error(error.message))
        return
    if value is None and choice.option != "max_failures":
        inv.private(
            render_error(f"`{choice.option}=` needs a whole number, e.g. `{choice.option}=2`.")
        )
        return
    for _ in range(CHANGE_TRIES):
        run = load_run(deps.store, choice.run_id)
        refusal = _refusal(inv, deps, run)
        if refusal or run is None:
            inv.private(render_error(refusal or "This run is no longer known."))
            return
        outcome = _apply(inv, deps, run, choice.option, value)
        if outcome != "raced":
            return
    inv.private(render_error("The plan changed several times at once; look at it again."))


def _refusal(inv: Invocation, deps: Deps, run: FleetRun | None) -> str:
    """Why this clicker may not change this run's plan now; empty when they may."""
    if run is None:
        return "This run is no longer known; preview it again."
    if inv.user_id != run.requester:
        deps.auditor.record(
            "refused", actor=inv.user_id, action=run.action, session_id=run.key, run_id=run.id,
            detail="plan change by someone else",
        )  # fmt: skip
        return "Only the person who asked for this run can change its plan."
    if run.state != "planned":
        done = _STATE_WORDS.get(run.state, run.state)
        return f"This run was already {done}, so its plan can no longer change."
    if not run.preview:
        return "This preview's plan cannot be changed here; type the command again."
    if deps.clock() >= float(run.preview["expires"]):
        return "This preview expired; type the command again for a new one."
    return ""


def _apply(
    inv: Invocation, deps: Deps, run: FleetRun, option: PlanOption, value: int | None
) -> str:
    """Voids the preview's token (once, in the store), records the new plan and shows it;
    "raced" when another change voided it first (the caller applies this one again)."""
    old = preview_claims(deps, run)
    if not consume_approval(deps.store, old, now=deps.clock(), use="replanned"):
        use = how_used(deps.store, old)
        if use == "replanned":
            return "raced"
        inv.private(render_error(_used_sentence(use)))
        return "refused"
    count = run.count
    changes: dict[str, object] = {
        "canary": min(value or 1, count) if option == "canary" else run.canary,
        "batch": value if option == "batch" else run.batch,
        "max_failures": value if option == "max_failures" else run.max_failures,
    }
    ttl = float(run.preview["expires"]) - deps.clock()
    token, claims = issue_token(
        secret=deps.settings.approval_secret, action=run.action,
        targets=[RUN_TOKEN_PREFIX + run.id], requester=run.requester, channel=run.channel,
        thread_ts=run.thread_ts, ttl_seconds=max(int(ttl), 1), kind=str(run.preview["kind"]),
        now=deps.clock(), epoch=deps.store.epoch(),
    )  # fmt: skip
    moved = move_run(deps.store, run, "planned", preview=_preview_record(claims), **changes)
    if moved is None:  # its token was ours to void, so nobody else can move it; say so
        inv.private(render_error("Someone changed this run at the same moment; look again."))
        return "refused"
    plan = frozen_plan(deps, moved)
    inv.replace(render_preview(deps, moved, plan, token, ttl))
    detail = (
        f"canary {moved.canary}, batches of {moved.batch}, "
        + plan_choice_label("max_failures", moved.max_failures).lower()
    )
    deps.auditor.record(
        "replanned", actor=inv.user_id, action=run.action, session_id=run.key, run_id=run.id,
        requester=run.requester, channel=run.channel, detail=detail,
    )  # fmt: skip
    return "changed"


def preview_claims(deps: Deps, run: FleetRun) -> ApprovalClaims:
    """The claims of the preview's current token, rebuilt from the run record (which keeps
    its nonce and times, not the token): enough to consume it or ask how it was used."""
    preview = run.preview
    return ApprovalClaims(
        action=run.action, targets=(RUN_TOKEN_PREFIX + run.id,), requester=run.requester,
        channel=run.channel, thread_ts=run.thread_ts, issued_at=int(preview["issued"]),
        expires_at=int(preview["expires"]), nonce=str(preview["nonce"]),
        kind=str(preview["kind"]), epoch=deps.store.epoch(),
    )  # fmt: skip


def _preview_record(claims: ApprovalClaims) -> dict[str, object]:
    return {
        "nonce": claims.nonce,
        "issued": claims.issued_at,
        "expires": claims.expires_at,
        "kind": claims.kind,
    }


def _used_sentence(use: str | None) -> str:
    if use == "cancelled":
        return "This preview was cancelled; type the command again for a new one."
    if use in ("approved", "sent"):
        return (
            "This run was already approved or sent for approval, so its plan can no longer change."
        )
    return "Someone changed this run at the same moment; look again."


__all__ = ["RUN_TOKEN_PREFIX", "change_plan", "frozen_plan", "preview_of", "preview_run"]
