"""Fleet runs: the preview (private), the two-person request, the progress message edited in
place with Pause / Resume / Cancel, the per-batch outcomes in its thread, and `jobs`.

Pure renderers: dataclasses in, `{"text", "blocks"}` out; host names, filters and ngrok's
sentences are escaped and clipped through `bot.slack.blocks`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.ngrok.models import Action
from bot.slack import blocks as bk
from bot.slack.buttons import PlanOption
from bot.slack.ids import (
    ACTION_CANCEL,
    ACTION_RUN_APPROVE,
    ACTION_RUN_ASK,
    ACTION_RUN_BATCH,
    ACTION_RUN_CANARY,
    ACTION_RUN_CANCEL,
    ACTION_RUN_DENY,
    ACTION_RUN_LINK,
    ACTION_RUN_MAX_FAILURES,
    ACTION_RUN_PAUSE,
    ACTION_RUN_RESUME,
    ACTION_RUN_TP_APPROVE,
)
from bot.slack.views.agent_text import OP_LABEL

_TOP = 6
MAX_LISTED_FAILURES = 10
MAX_OUTCOME_LINES = 40
_VERB: dict[Action, str] = {"restart": "restart", "update": "update", "stop": "stop"}
_STEPS: dict[Action, str] = {
    "restart": "restart, wait until it is back under a new session id",
    "update": "update, wait at least {delay}, restart, check it runs the new version",
    "stop": "stop",
}


@dataclass(frozen=True)
class RunPreview:
    """The frozen summary the requester and the approver see."""

    run_id: str
    action: Action
    query_text: str
    count: int
    breakdown: Mapping[str, Mapping[str, int]]
    sample_hosts: Sequence[str]
    skipped: Mapping[str, int]  # reason -> how many
    canary: int
    batch: int
    batches: int
    max_failures: int | None
    requests: int
    eta_seconds: float
    update_delay: float
    newest_version: str | None = None


@dataclass(frozen=True)
class PlanMenu:
    """One of the preview's plan menus: the setting it changes, its options (label, sealed
    value) and the index of the one the plan uses now."""

    option: PlanOption
    choices: Sequence[tuple[str, str]]
    current: int


_MENU_PLACEHOLDER: dict[PlanOption, str] = {
    "canary": "Canary size",
    "batch": "Batch size",
    "max_failures": "When to stop",
}


def plan_choice_label(option: PlanOption, value: int | None) -> str:
    """How one menu option reads: `Canary: 2 agents`, `Batches of 10`, `Stop after more
    than 3 failures` (None: the default, the first failing batch)."""
    if option == "canary":
        return f"Canary: {value} agent{'' if value == 1 else 's'}"
    if option == "batch":
        return f"Batches of {value}"
    if value is None:
        return "Stop at the first failing batch"
    return f"Stop after more than {value} failure{'' if value == 1 else 's'}"


@dataclass(frozen=True)
class Failure:
    label: str  # host or session id, raw
    session_id: str
    sentence: str


@dataclass(frozen=True)
class RunProgress:
    run_id: str
    action: Action
    query_text: str
    state: str
    requester: str
    approver: str | None
    total: int
    done: int
    failed: int
    skipped: int
    remaining: int
    batch_index: int
    batches: int
    eta_seconds: float | None
    failures: Sequence[Failure] = field(default_factory=tuple)
    note: str = ""


@dataclass(frozen=True)
class AgentOutcome:
    label: str
    session_id: str
    state: str  # done, failed, skipped, left
    sentence: str


_ROLLING = {
    "restart": "a batch starts once the one before is back",
    "stop": "a batch starts once ngrok accepted the one before",
    "update": (
        "a batch restarts once the one before is back, and after the canary its updates go "
        "out while that one comes back"
    ),
}


def format_eta(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _counts(counts: Mapping[str, int]) -> str:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{bk.clip(k or '?', 40)} {n}" for k, n in ranked[:_TOP])
    return text + (f", +{len(ranked) - _TOP} more" if len(ranked) > _TOP else "")


def _filter_text(query_text: str) -> str:
    return bk.code_span(query_text, 300) if query_text else "every agent (`all`)"


def _summary_blocks(p: RunPreview) -> list[dict[str, Any]]:
    noun = "agent" if p.count == 1 else "agents"
    head = (
        f"*{OP_LABEL[p.action]} {p.count} {noun}* matching {_filter_text(p.query_text)} "
        f"(run `{p.run_id}`)"
    )
    lines = [f"*{label}:* {_counts(c)}" for label, c in p.breakdown.items() if c]
    blocks = [bk.section(head), bk.context(" · ".join(lines) or "No agents.")]
    if p.sample_hosts:
        hosts = ", ".join(bk.code_span(h, 60) for h in p.sample_hosts[:8])
        more = f" and {p.count - len(p.sample_hosts[:8])} more" if p.count > 8 else ""
        blocks.append(bk.context(f"Hosts: {hosts}{more}"))
    if p.skipped:
        skipped = "; ".join(
            f"{n} skipped: {bk.clip(reason, 200)}"
            for reason, n in sorted(p.skipped.items(), key=lambda kv: -kv[1])
        )
        blocks.append(bk.section(f"*Skipped:* {skipped}", block_id="skipped"))
    delay = f"{p.update_delay:g} s" if p.update_delay < 10 else format_eta(p.update_delay)
    steps = _STEPS[p.action].format(delay=delay)
    stop_rule = (
        "stops after the first batch with a failure"
        if p.max_failures is None
        else f"stops after more than {p.max_failures} failure(s)"
    )
    plan = (
        f"*Plan:* canary of {p.canary}, then {max(p.batches - 1, 0)} batch(es) of up to "
        f"{p.batch}; each agent: {steps}; {_ROLLING[p.action]}; "
        f"{stop_rule}. About {p.requests} ngrok requests, paced below the shared budget's "
        f"reserve: *ETA {format_eta(p.eta_seconds)}*."
    )
    blocks.append(bk.section(plan, block_id="plan"))
    if p.newest_version and p.action == "update":
        blocks.append(bk.context(f"Newest version seen: {bk.clip(p.newest_version, 40)}"))
    return blocks


def render_run_preview(
    p: RunPreview,
    *,
    approve_value: str,
    cancel_value: str,
    two_person: bool,
    ttl_text: str,
    menus: Sequence[PlanMenu] = (),
) -> dict[str, Any]:
    """The private preview with its plan menus (canary, batch, when to stop), Approve (or
    Request approval) and Cancel."""
    blocks = _summary_blocks(p)
    if menus:
        blocks.append(
            bk.context(
                f"Change the plan here: it re-plans these same {p.count} agents (the target "
                "set stays frozen) and shows the new plan and ETA."
            )
        )
        blocks.append(bk.actions([_plan_select(m) for m in menus], "plan_options"))
    confirm = bk.confirm_dialog(
        f"{OP_LABEL[p.action]} {p.count} agents?",
        f"A rolling {p.action} of exactly these {p.count} agents; you can pause or cancel it.",
        "Start the run",
        danger=p.action == "stop",
    )
    if two_person:
        blocks.append(bk.context("A second person must approve this run (rules for its agents)."))
        first = bk.button("Request approval", ACTION_RUN_ASK, approve_value, style="primary")
    else:
        first = bk.button(
            "Approve run", ACTION_RUN_APPROVE, approve_value, style="primary", confirm=confirm
        )
    blocks.append(bk.actions([first, bk.button("Cancel", ACTION_CANCEL, cancel_value)], "run"))
    blocks.append(bk.context(f"The target set is frozen; this prompt expires in {ttl_text}."))
    return bk.message(f"{OP_LABEL[p.action]} {p.count} agents? Preview of run {p.run_id}", blocks)


def _plan_select(menu: PlanMenu) -> dict[str, Any]:
    placeholder, current = _MENU_PLACEHOLDER[menu.option], menu.current
    if menu.option == "canary":
        return bk.static_select(ACTION_RUN_CANARY, placeholder, menu.choices, initial=current)
    if menu.option == "batch":
        return bk.static_select(ACTION_RUN_BATCH, placeholder, menu.choices, initial=current)
    return bk.static_select(ACTION_RUN_MAX_FAILURES, placeholder, menu.choices, initial=current)


def render_run_request(
    p: RunPreview, *, requester_id: str, approvers: str, approve_value: str, deny_value: str
) -> dict[str, Any]:
    """The public two-person request of a run; the approver sees the same frozen summary."""
    blocks = [
        bk.section(f"{bk.user_mention(requester_id)} asks for a rolling {p.action}:"),
        *_summary_blocks(p),
        bk.actions(
            [
                bk.button("Approve run", ACTION_RUN_TP_APPROVE, approve_value, style="primary"),
                bk.button("Deny", ACTION_RUN_DENY, deny_value, style="danger"),
            ],
            "run_decision",
        ),
    ]
    if approvers:
        blocks.append(bk.context(f"Approvers: {approvers}"))
    return bk.message(f"Approval requested: {p.action} of {p.count} agents", blocks)


_STATE_TEXT = {
    "running": ":arrows_counterclockwise: Running",
    "paused": ":double_vertical_bar: Paused",
    "cancelling": ":hourglass: Cancelling (finishing the requests in flight)",
    "cancelled": ":no_entry_sign: Cancelled",
    "done": ":white_check_mark: Done",
    "stopped": ":octagonal_sign: Stopped after failures",
    "denied": ":no_entry: Denied",
    "expired": ":hourglass: Expired before anyone approved it, nothing ran",
}


def render_run_progress(p: RunProgress) -> dict[str, Any]:
    """The one public message of a run, edited in place; buttons until it is final."""
    state = _STATE_TEXT.get(p.state, bk.clip(p.state, 40))
    who = f"asked by {bk.user_mention(p.requester)}"
    if p.approver:
        who += f", approved by {bk.user_mention(p.approver)}"
    head = (
        f"*{state}: {p.action} of {p.total} agents* matching {_filter_text(p.query_text)} "
        f"(run `{p.run_id}`, {who})"
    )
    counts = (
        f"*Done* {p.done} · *Failed* {p.failed} · *Skipped* {p.skipped} · *Remaining* {p.remaining}"
    )
    if p.state in ("running", "paused") and p.batches:
        batch = "canary" if p.batch_index == 0 else f"batch {p.batch_index} of {p.batches - 1}"
        counts += f" · now: {batch}"
    if p.eta_seconds is not None and p.state == "running":
        counts += f" · ETA {format_eta(p.eta_seconds)}"
    blocks = [bk.section(head, block_id=f"run_{p.state}"), bk.section(counts, block_id="counts")]
    if p.failures:
        lines = [
            f"• {bk.clip(f.label, 60)} {bk.code_span(f.session_id, 40)}: {bk.clip(f.sentence, 200)}"
            for f in p.failures[:MAX_LISTED_FAILURES]
        ]
        if len(p.failures) > MAX_LISTED_FAILURES:
            lines.append(f"… and {len(p.failures) - MAX_LISTED_FAILURES} more in the thread")
        blocks.append(bk.section(bk.truncate_escaped("*Failures:*\n" + "\n".join(lines), 2900)))
    if p.note:
        blocks.append(bk.context(bk.clip(p.note, 500)))
    buttons = []
    if p.state == "running":
        buttons.append(bk.button("Pause", ACTION_RUN_PAUSE, p.run_id))
    if p.state == "paused":
        buttons.append(bk.button("Resume", ACTION_RUN_RESUME, p.run_id, style="primary"))
    if p.state in ("running", "paused"):
        confirm = bk.confirm_dialog(
            "Cancel this run?",
            "Requests in flight finish; no agent is started after this.",
            "Cancel the run",
            "Keep it going",
            danger=True,
        )
        buttons.append(
            bk.button("Cancel", ACTION_RUN_CANCEL, p.run_id, style="danger", confirm=confirm)
        )
    if buttons:
        blocks.append(bk.actions(buttons, "run_controls"))
    else:
        blocks.append(bk.context("Per-agent outcomes are in the thread of this message."))
    fallback = (
        f"{p.action} run {p.run_id}: {p.state}; done {p.done}, failed {p.failed}, "
        f"skipped {p.skipped}, remaining {p.remaining}"
    )
    return bk.message(fallback, blocks)


_MARK = {"done": ":white_check_mark:", "failed": ":x:", "skipped": ":fast_forward:"}


def render_batch_outcomes(
    run_id: str, title: str, outcomes: Sequence[AgentOutcome]
) -> dict[str, Any]:
    """One thread message per batch: each agent's outcome in one line."""
    lines = [
        f"{_MARK.get(o.state, ':grey_question:')} {bk.clip(o.label, 60)} "
        f"{bk.code_span(o.session_id, 40)}: {bk.clip(o.sentence, 160)}"
        for o in outcomes[:MAX_OUTCOME_LINES]
    ]
    if len(outcomes) > MAX_OUTCOME_LINES:
        lines.append(f"… and {len(outcomes) - MAX_OUTCOME_LINES} more")
    text = bk.truncate_escaped(
        f"*Run `{run_id}`, {bk.clip(title, 40)}:*\n" + "\n".join(lines), 2900
    )
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.state] = counts.get(o.state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    return bk.message(f"Run {run_id}, {title}: {summary}", [bk.section(text)])


@dataclass(frozen=True)
class RunLine:
    run_id: str
    action: Action
    state: str
    query_text: str
    count: int
    requester: str
    progress_url: str | None  # the progress message's permalink, when Slack gave one
    counts: str


def render_runs(runs: Sequence[RunLine]) -> dict[str, Any]:
    """`jobs`: running runs first, then recent ones, each with a button that opens its
    progress message (a link button: Slack opens the permalink, the app only acks)."""
    if not runs:
        return bk.message("No fleet runs yet.", [bk.section("No fleet runs yet.")])
    blocks: list[dict[str, Any]] = [bk.header("Fleet runs")]
    for run in runs[:20]:
        text = (
            f"`{run.run_id}` *{_STATE_TEXT.get(run.state, bk.clip(run.state, 40))}*: "
            f"{run.action} of {run.count} matching {_filter_text(run.query_text)}, asked by "
            f"{bk.user_mention(run.requester)}\n"
            f"{bk.clip(run.counts, 200)}"
        )
        link = None
        if run.progress_url:
            link = bk.button("Progress", ACTION_RUN_LINK, run.run_id, url=run.progress_url)
        blocks.append(bk.section(text, accessory=link, block_id=f"run_{run.run_id}"))
    return bk.message(f"{len(runs)} fleet run(s)", blocks)


def render_run_notice(text: str) -> dict[str, Any]:
    """A short reply about a run (started, paused by someone, already decided); `text` is
    escaped mrkdwn."""
    return bk.message(text, [bk.section(text)])
