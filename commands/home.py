"""The App Home tab: rendered from the watcher's last scan kept in the store (never an
ngrok call per view) and published for one user with views.publish."""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.deps import Deps
from bot.policy import accounts_visible_to, may_approve_requests
from bot.slack.views.home import AccountView, Approvable, HomeView, RunRow, render_home
from bot.state.approvals import issue_token
from bot.state.requests import TwoPersonRequest
from commands.watch import load_state

log = logging.getLogger("ngrok_ops.home")

JOB_HOME = "home"
RUN_PREFIX = "run:"


def pending_requests(deps: Deps) -> list[TwoPersonRequest]:
    """Every two-person request still waiting (their ids are bare nonces, so every live
    record is read and the ones that are not requests are skipped)."""
    found = []
    for record in deps.store.find_requests(""):
        if record.get("state") != "requested" or "requester" not in record:
            continue
        try:
            found.append(TwoPersonRequest.from_record(record))
        except (ValueError, KeyError, TypeError):
            continue
    return found


def fleet_runs(deps: Deps, accounts: Collection[str]) -> list[RunRow]:
    """`run:<id>` records of these accounts, when fleet runs exist; shown as far as their
    fields say."""
    rows = []
    for record in deps.store.find_requests(RUN_PREFIX):
        state = str(record.get("state", "?"))
        if state in ("done", "failed", "cancelled", "finished"):
            continue
        if record.get("account", deps.config.default_account) not in accounts:
            continue
        rows.append(
            RunRow(
                id=str(record.get("id", "")),
                title=str(record.get("title") or record.get("action") or "fleet run"),
                state=state,
                done=_int(record.get("done")),
                total=_int(record.get("total")),
                by=record.get("requester") if isinstance(record.get("requester"), str) else None,
            )
        )
    return rows


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def build_home(deps: Deps, user_id: str) -> HomeView:
    roles = deps.roles(user_id)
    visible = accounts_visible_to(deps.config, roles)
    accounts = [
        AccountView(name, load_state(deps.store, name)[0] if name in deps.config.alerts else None)
        for name in visible
    ]
    pending = pending_requests(deps)
    mine = [r for r in pending if r.requester == user_id]
    to_approve = []
    if may_approve_requests(roles):
        for request in pending:
            if request.requester == user_id or request.account not in visible:
                continue
            # The same token the channel's buttons carry; the click runs the same checks.
            token, _ = issue_token(
                secret=deps.settings.approval_secret, action=request.action,
                targets=[request.session.id], requester=request.requester,
                channel=request.channel, thread_ts=request.thread_ts, ttl_seconds=request.ttl,
                epoch=deps.store.epoch(), kind="two-person", request_id=request.id,
                now=deps.clock(),
            )  # fmt: skip
            to_approve.append(Approvable(request, token))
    return HomeView(
        user_id=user_id,
        now=deps.clock(),
        accounts=accounts,
        runs=fleet_runs(deps, visible),
        mine=mine,
        to_approve=to_approve,
    )


def publish_home(deps: Deps, user_id: str) -> None:
    view = render_home(build_home(deps, user_id))
    try:
        deps.slack.views_publish(user_id=user_id, view=view)
    except SlackApiError as error:
        log.warning("could not publish the Home tab: %s", error.response.get("error"))
