"""The daily digest: once a day at `digest.at` in `digest.timezone`, a summary of the last
24 h in `digest.channel`, and the "Update outdated…" button behind it.

A job runs every minute (huey's periodic task, on one consumer); the first run at or after
the configured time (within CATCH_UP_SECONDS, so a bot started in the evening does not send
the morning's digest) claims `digest:<date>` with an insert-if-absent in the store and posts.
The clock is `deps.clock`, so tests move time instead of waiting."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import Any

from bot.deps import Deps
from bot.slack.invocation import Invocation
from bot.slack.views.digest import AccountDigest, Digest, render_digest
from bot.slack.views.errors import render_error
from bot.slack.views.home import newest_version, outdated_count
from bot.watch.model import WatchState
from commands.grammar import ParseError, parse_command
from commands.home import fleet_runs
from commands.router import route
from commands.watch import load_state

log = logging.getLogger("ngrok_ops.digest")

JOB_DIGEST = "digest"
DIGEST_PREFIX = "digest:"
CATCH_UP_SECONDS = 3600.0
DAY = 86400.0
ACTION_EVENTS = ("executed", "failed")


def run_digest(deps: Deps, payload: dict[str, Any]) -> None:
    """Posts today's digest once, when its time has come."""
    config = deps.config.digest
    if config is None:
        return
    now = deps.clock()
    local = datetime.fromtimestamp(now, config.zone)
    due = local.replace(hour=config.hour, minute=config.minute, second=0, microsecond=0)
    if not 0 <= now - due.timestamp() < CATCH_UP_SECONDS:
        return
    claim = {"state": "posting", "at": now}
    if not deps.store.create_request(DIGEST_PREFIX + due.date().isoformat(), claim,
                                     ttl_seconds=2 * DAY):  # fmt: skip
        return
    digest = build_digest(deps, now, day=local.strftime("%a %d %b %Y"))
    deps.slack.chat_postMessage(channel=config.channel, unfurl_links=False, **render_digest(digest))


def account_digest(name: str, state: WatchState, now: float) -> AccountDigest:
    recent = [e for e in state.history if now - e.at < DAY]
    outages = [(e.host, e.seconds or 0.0, False) for e in recent if e.kind == "reconnected"]
    outages += [(g.agent.host, now - g.agent.last_seen, True) for g in state.gone.values()
                if g.declared]  # fmt: skip
    outages.sort(key=lambda o: o[1], reverse=True)
    old_sizes = [n for at, n in state.sizes if now - at >= DAY - 600]
    return AccountDigest(
        name=name,
        online=len(state.agents),
        change=len(state.agents) - old_sizes[-1] if old_sizes else None,
        disconnects=sum(1 for e in recent if e.kind == "disconnected"),
        reconnects=sum(1 for e in recent if e.kind == "reconnected"),
        longest=outages[:3],
        outdated=outdated_count(state),
        newest=newest_version(state),
        new_agents=sum(1 for e in recent if e.kind == "new"),
    )


def build_digest(deps: Deps, now: float, *, day: str) -> Digest:
    accounts = []
    for name in sorted(deps.config.alerts):
        state, _ = load_state(deps.store, name)
        if state.scanned_at is not None:
            accounts.append(account_digest(name, state, now))
    rows = deps.store.recent_audit(limit=1000)
    done = Counter(
        (str(r.get("actor", "?")), str(r.get("action", "?")))
        for r in rows
        if r.get("event") in ACTION_EVENTS and now - float(r["ts"]) < DAY
    )
    runs = Counter(r.by for r in fleet_runs(deps, deps.config.accounts) if r.by)
    return Digest(
        day=day,
        accounts=accounts,
        actions=[(user, action, n) for (user, action), n in done.most_common()],
        runs=list(runs.most_common()),
    )


def show_outdated(inv: Invocation, deps: Deps, value: str) -> None:
    """ "Update outdated…": the preview of a fleet run that updates every agent older than
    the newest version, private to the clicker, who approves it like any other run."""
    _, _, newest = value.partition("|")
    try:
        command = parse_command(f"update version<{newest.strip()[:40]}")
    except ParseError as error:
        inv.private(render_error(error.message))
        return
    route(inv, deps, command)
