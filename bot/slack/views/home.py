"""The App Home tab: the fleet per account from the watcher's last scan, fleet runs, the
user's pending two-person requests and those waiting for their approval, and Refresh.

Pure: everything arrives in an `HomeView`; no ngrok call is made for a view."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.slack import blocks as bk
from bot.slack.ids import (
    ACTION_HOME_REFRESH,
    ACTION_TWO_PERSON_APPROVE,
    ACTION_TWO_PERSON_DENY,
)
from bot.state.requests import TwoPersonRequest
from bot.watch.model import WatchState

MAX_HOME_BLOCKS = 100
TOP_COUNTS = 8


def version_key(version: str) -> tuple[int, ...]:
    """`3.26.1` -> (3, 26, 1); anything unparsable sorts oldest."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("-")[0])[:4]) or (-1,)


def versions_newest_first(state: WatchState) -> list[tuple[str, int]]:
    counts = Counter(a.version or "?" for a in state.agents.values())
    return sorted(counts.items(), key=lambda kv: version_key(kv[0]), reverse=True)


def newest_version(state: WatchState) -> str | None:
    known = [v for v, _ in versions_newest_first(state) if v != "?"]
    return known[0] if known else None


def outdated_count(state: WatchState) -> int:
    newest = newest_version(state)
    if newest is None:
        return 0
    return sum(
        1
        for a in state.agents.values()
        if a.version and version_key(a.version) < version_key(newest)
    )


@dataclass(frozen=True)
class RunRow:
    """A fleet run (a `run:<id>` record another part of the bot writes), as far as known."""

    id: str
    title: str
    state: str
    done: int | None = None
    total: int | None = None
    by: str | None = None


@dataclass(frozen=True)
class Approvable:
    """A request waiting for this user's approval, with the signed token for its buttons."""

    request: TwoPersonRequest
    token: str


@dataclass(frozen=True)
class AccountView:
    name: str
    state: WatchState | None  # None: not watched (no alerts channel) or not scanned yet


@dataclass(frozen=True)
class HomeView:
    user_id: str
    now: float
    accounts: Sequence[AccountView] = ()
    runs: Sequence[RunRow] = ()
    mine: Sequence[TwoPersonRequest] = ()
    to_approve: Sequence[Approvable] = ()
    notes: Sequence[str] = field(default_factory=tuple)


def _counts(pairs: Sequence[tuple[str, int]]) -> str:
    shown = [f"{bk.clip(k or '?', 30)} {n}" for k, n in pairs[:TOP_COUNTS]]
    if len(pairs) > TOP_COUNTS:
        shown.append(f"… (+{len(pairs) - TOP_COUNTS})")
    return ", ".join(shown) or "-"


def _account_blocks(account: AccountView, now: float) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [bk.header(f"Account {account.name}")]
    state = account.state
    if state is None or state.scanned_at is None:
        blocks.append(
            bk.section(
                "Not watched yet: set `alerts.channel` for this account in BOT_CONFIG so the "
                "watcher scans it; this tab shows its last scan."
            )
        )
        return blocks
    age = bk.format_duration(timedelta(seconds=max(now - state.scanned_at, 0)))
    newest = newest_version(state)
    versions = []
    for version, n in versions_newest_first(state)[:TOP_COUNTS]:
        label = f"{bk.clip(version, 30)} {n}"
        outdated = newest and version != "?" and version_key(version) < version_key(newest)
        versions.append(f"*{label}* :warning:" if outdated else label)
    regions = Counter(a.region or "?" for a in state.agents.values()).most_common()
    oses = Counter(a.os or "?" for a in state.agents.values()).most_common()
    down_now = [g for g in state.gone.values() if g.declared]
    lost = [e for e in state.history if e.kind == "disconnected" and now - e.at < 86400]
    blocks.append(
        bk.section(
            f"*{len(state.agents)} agents online* · {outdated_count(state)} outdated · "
            f"{len(down_now)} down now",
            fields=[
                "*Versions (newest first)*\n" + (", ".join(versions) or "-"),
                "*Regions*\n" + _counts(regions),
                "*OS*\n" + _counts(oses),
                f"*Disconnected in the last 24 h*\n{len(lost)}"
                + (": " + ", ".join(bk.clip(e.host, 40) for e in lost[-5:]) if lost else ""),
            ],
        )
    )
    when = bk.date_token(datetime.fromtimestamp(state.scanned_at, UTC))
    note = f"From the watcher's scan {age} ago ({when})"
    if state.problem is not None:
        note += f" · :rotating_light: {bk.clip(state.problem.sentence, 200)}"
    if state.stretched:
        note += f" · scanning every {state.interval:.0f} s (fleet too large for the interval)"
    blocks.append(bk.context(note))
    return blocks


def _request_line(request: TwoPersonRequest) -> str:
    target = bk.code_span(request.session.id, 40)
    return (
        f"*{request.action}* {target} in <#{request.channel}> requested by "
        f"{bk.user_mention(request.requester)}"
    )


def render_home(view: HomeView) -> dict[str, Any]:
    """The view for views.publish (type home, at most 100 blocks)."""
    blocks: list[dict[str, Any]] = [
        bk.header("ngrok fleet"),
        bk.actions([bk.button("Refresh", ACTION_HOME_REFRESH, "refresh")]),
    ]
    for account in view.accounts:
        blocks += _account_blocks(account, view.now)
    if not view.accounts:
        blocks.append(bk.section("You may not see any ngrok account here."))
    if view.runs:
        blocks.append(bk.header("Fleet runs"))
        for run in view.runs[:10]:
            progress = f" · {run.done}/{run.total}" if run.total is not None else ""
            by = f" · by {bk.user_mention(run.by)}" if run.by else ""
            blocks.append(
                bk.section(f"*{bk.clip(run.title, 200)}* · {bk.clip(run.state, 30)}{progress}{by}")
            )
    blocks.append(bk.header("Waiting for your approval"))
    if not view.to_approve:
        blocks.append(bk.context("Nothing waits for you."))
    for item in view.to_approve[:15]:
        request = item.request
        blocks.append(bk.section(_request_line(request)))
        blocks.append(
            bk.actions(
                [
                    bk.button("Approve", ACTION_TWO_PERSON_APPROVE, item.token, style="primary"),
                    bk.button("Deny", ACTION_TWO_PERSON_DENY, item.token, style="danger"),
                ],
                block_id=f"home-{request.id}",
            )
        )
    blocks.append(bk.header("Your pending requests"))
    if not view.mine:
        blocks.append(bk.context("You have no pending two-person request."))
    for request in view.mine[:10]:
        blocks.append(bk.section(_request_line(request) + " · waiting for an approver"))
    for note in view.notes:
        blocks.append(bk.context(bk.escape(note)))
    if len(blocks) > MAX_HOME_BLOCKS:
        blocks = [*blocks[: MAX_HOME_BLOCKS - 1], bk.context("… (more than fits the Home tab)")]
    return {"type": "home", "blocks": blocks}
