"""The watcher: scans each watched account, diffs against the last scan kept in the store
(bot.watch.diff) and says what changed in the alerts channel.

Scheduling. Poll intervals are often shorter than a minute, so huey's minute-grained
periodic task cannot drive the scans themselves. Each account has one *chain*: a `watch`
job that scans and then reschedules itself with `jobs.later(interval)`; scheduled jobs are
kept in the queue's storage, so a chain survives deploys. The chain's id and the time its
next run is due are kept in the store (`watch-chain:<account>`); a job whose chain id is no
longer the current one ends there. A `watch_keeper` job runs every minute (huey's periodic
task, on one consumer) and when a consumer starts: when an account has no chain, or its
chain is overdue (a process died between the scan and the reschedule), it starts a new one,
which retires the old.

One watcher per account across all processes: before scanning, a job takes
`watch-lock:<account>` with `store.create_request` (insert-if-absent, TTL of nine tenths of
the interval), so however many chains or processes exist, an account is scanned at most
once per interval. The state itself moves by compare-and-set on its version, and alerts are
posted only by the process whose state write won, so even a scan that outlives its lock
cannot alert twice.

Budget. Scans are ordinary (non-urgent) reads through the shared budget, and the interval
is stretched so the watcher spends at most `budget_share` of the non-urgent part
(bot.watch.cost); `python -m bot check` shows when that happens.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.deps import Deps
from bot.ngrok.errors import NgrokError, Unauthorized
from bot.settings.awareness import AlertsConfig
from bot.slack.blocks import ButtonContext
from bot.slack.invocation import Invocation
from bot.slack.views import alerts as views
from bot.slack.views.errors import render_error
from bot.state.store import Store
from bot.watch.cost import cadence
from bot.watch.diff import Rules, diff
from bot.watch.model import STATE_PREFIX, Agent, ApiProblem, Change, OwnAction, WatchState

log = logging.getLogger("ngrok_ops.watch")

JOB_WATCH = "watch"
JOB_WATCH_KEEPER = "watch_keeper"
CHAIN_PREFIX = "watch-chain:"
LOCK_PREFIX = "watch-lock:"
ALERT_PREFIX = "alert:"
RATE_PREFIX = "alert-rate:"
STATE_TTL = 366 * 86400.0
ALERT_TTL = 7 * 86400.0
OWN_ACTION_SECONDS = 3600.0


@dataclass(frozen=True)
class Posted:
    """Where an alert went: its own message (to edit) and the thread its follow-ups join
    (itself when top-level, the latest top-level alert when the channel's limit held it)."""

    ts: str | None
    thread: str | None


def watched(deps: Deps) -> dict[str, AlertsConfig]:
    return {name: cfg for name, cfg in deps.config.alerts.items() if name in deps.ngrok_clients}


# --- state in the store ------------------------------------------------------------------------


def load_state(store: Store, account: str) -> tuple[WatchState, str | None]:
    record = store.get_request(STATE_PREFIX + account)
    if record is None:
        return WatchState(), None
    return WatchState.from_data(record), str(record["state"])


def save_state(store: Store, account: str, state: WatchState, version: str | None) -> str | None:
    """Compare-and-set on the version; the new version, or None when another process won."""
    data = state.to_data()
    key = STATE_PREFIX + account
    if version is None:
        return (
            "1"
            if store.create_request(key, {**data, "state": "1"}, ttl_seconds=STATE_TTL)
            else None
        )
    new = str(int(version) + 1)
    moved = store.transition_request(key, expect_state=version, new_state=new, changes=data)
    return new if moved is not None else None


# --- scheduling ------------------------------------------------------------------------------


def keep_watching(deps: Deps, payload: dict[str, Any]) -> None:
    """Starts a chain for every watched account that has none or whose chain is overdue.
    Keepers may race (the minute's tick and a consumer's start, on several consumers): the
    new chain id is written by insert-if-absent or compare-and-set on the old one, and only
    the keeper whose write won starts it."""
    now = deps.clock()
    for account, cfg in watched(deps).items():
        key = CHAIN_PREFIX + account
        record = deps.store.get_request(key)
        if record is not None:
            grace = max(2 * float(record.get("interval", cfg.poll_interval)), 30.0)
            if now <= float(record.get("next_due", 0.0)) + grace:
                continue
        chain = secrets.token_urlsafe(9)
        fields = {"next_due": now, "interval": cfg.poll_interval}
        if record is None:
            won = deps.store.create_request(key, {"state": chain, **fields}, ttl_seconds=STATE_TTL)
        else:
            old = str(record["state"])
            won = (
                deps.store.transition_request(
                    key, expect_state=old, new_state=chain, changes=fields
                )
                is not None
            )
        if not won:
            continue  # another keeper started one just now
        log.info("watching account %s (chain %s)", account, chain)
        deps.jobs.submit(JOB_WATCH, {"account": account, "chain": chain})


def run_watch(deps: Deps, payload: dict[str, Any]) -> None:
    """One link of an account's chain: scan (if nobody else just did), then reschedule."""
    account, chain = str(payload["account"]), str(payload["chain"])
    cfg = watched(deps).get(account)
    record = deps.store.get_request(CHAIN_PREFIX + account)
    if cfg is None or record is None or record.get("state") != chain:
        return  # alerts turned off, or a newer chain took over
    interval = cfg.poll_interval
    try:
        state = scan_once(deps, account, cfg) or load_state(deps.store, account)[0]
        interval = state.interval or cfg.poll_interval
    finally:
        # Rescheduled even after an unexpected error, so one bad scan does not end watching.
        deps.store.transition_request(
            CHAIN_PREFIX + account, expect_state=chain, new_state=chain,
            changes={"next_due": deps.clock() + interval, "interval": interval},
        )  # fmt: skip
        deps.jobs.later(interval, JOB_WATCH, payload)


def scan_once(deps: Deps, account: str, cfg: AlertsConfig) -> WatchState | None:
    """Scans one account under the lock and announces what changed. None when another
    process holds the lock (it scans) or won the state write."""
    state, version = load_state(deps.store, account)
    interval = state.interval or cfg.poll_interval
    lock = {"state": "held", "at": deps.clock()}
    if not deps.store.create_request(LOCK_PREFIX + account, lock, ttl_seconds=0.9 * interval):
        return None
    client = deps.ngrok_clients[account]
    try:
        scanned = list(client.iter_sessions())
    except NgrokError as error:
        return _api_problem(deps, account, cfg, state, version, error)
    now = deps.clock()
    pace = cadence(
        len(scanned),
        poll_interval=cfg.poll_interval,
        budget_share=cfg.budget_share,
        max_requests=deps.settings.ngrok_max_requests,
        window_seconds=deps.settings.ngrok_window_seconds,
    )
    if pace.stretched and not state.stretched:
        log.warning(
            "account %s: %d agents need %d requests per scan; scanning every %.0f s instead "
            "of %.0f s to stay within %.0f%% of the budget",
            account, len(scanned), pace.pages, pace.interval, cfg.poll_interval,
            cfg.budget_share * 100,
        )  # fmt: skip
    sessions = [s for s in scanned if cfg.match.matches(s)]
    rules = Rules(cfg.min_down, cfg.flapping_window, cfg.flapping_count)
    new_state, changes = diff(
        state, sessions, now=now, rules=rules, own_actions=own_actions(deps, account, now)
    )
    problem = state.problem
    new_state = replace(
        new_state, interval=pace.interval, stretched=pace.stretched, pages=pace.pages, problem=None
    )
    version = save_state(deps.store, account, new_state, version)
    if version is None:
        return None
    if problem is not None:
        _problem_recovered(deps, account, cfg, problem, now)
    announced = announce(deps, account, cfg, new_state, changes)
    if announced is not new_state:
        save_state(deps.store, account, announced, version)
    return announced


def own_actions(deps: Deps, account: str, now: float) -> list[OwnAction]:
    """The bot's recent actions on this account (commands.approval's `action:` records)."""
    found = []
    for record in deps.store.find_requests("action:"):
        action = OwnAction.from_record(record)
        if (
            action is not None
            and record.get("account") == account
            and now - action.started < OWN_ACTION_SECONDS
        ):
            found.append(action)
    return found


# --- the API itself failing -------------------------------------------------------------------


def _api_problem(
    deps: Deps,
    account: str,
    cfg: AlertsConfig,
    state: WatchState,
    version: str | None,
    error: NgrokError,
) -> WatchState | None:
    """Said once; the message is edited when a scan works again."""
    if state.problem is not None:
        return state
    key_failed = isinstance(error, Unauthorized)
    sentence = str(error)
    log.warning("watcher of %s cannot scan: %s", account, sentence)
    problem = ApiProblem("key" if key_failed else "down", deps.clock(), sentence)
    marked = replace(state, problem=problem)
    version = save_state(deps.store, account, marked, version)
    if version is None:
        return None
    ts = post_top(
        deps,
        cfg,
        views.render_api_problem(account=account, key_failed=key_failed, sentence=sentence),
    ).ts
    final = replace(marked, problem=replace(problem, alert_ts=ts))
    save_state(deps.store, account, final, version)
    return final


def _problem_recovered(
    deps: Deps, account: str, cfg: AlertsConfig, problem: ApiProblem, now: float
) -> None:
    message = views.render_api_recovered(
        account=account, key_failed=problem.kind == "key", seconds=now - problem.since
    )
    if problem.alert_ts:
        _edit(deps, cfg.channel, problem.alert_ts, message)
    else:
        post_top(deps, cfg, message)


# --- saying it ---------------------------------------------------------------------------------


def announce(
    deps: Deps, account: str, cfg: AlertsConfig, state: WatchState, changes: list[Change]
) -> WatchState:
    """Posts one message per kind of change (grouped), follow-ups in alert threads, the
    "recovered" edits and notes in the threads of the bot's own actions."""

    def of(kind: str) -> list[Change]:
        return [c for c in changes if c.kind == kind]

    for change in of("own_left") + of("own_back"):
        if change.kind == "own_left" and change.action and change.action.action != "stop":
            continue  # a restart or update is noted once, when the agent is back
        if change.action is not None:
            Invocation.from_data(change.action.where, deps.slack).public(
                views.render_own_action(change)
            )
    down = of("disconnected")
    if down:
        alert_id = secrets.token_urlsafe(9)
        agents = [c.agent for c in down]
        message = views.render_disconnected(
            agents, account=account, min_down=cfg.min_down, alert_id=alert_id,
            fleet=len(state.agents) + len(state.gone),
        )  # fmt: skip
        posted = post_top(deps, cfg, message)
        record = {
            "state": "open",
            "account": account,
            "channel": cfg.channel,
            "ts": posted.ts,
            "thread": posted.thread,
            "agents": [a.to_data() for a in agents],
            "open": [a.id for a in agents],
            "since": min(a.last_seen for a in agents),
        }
        deps.store.put_request(ALERT_PREFIX + alert_id, record, ttl_seconds=ALERT_TTL)
        state = state.with_alert(alert_id, {a.id for a in agents})
    _reconnected(deps, account, cfg, of("reconnected"))
    for kind in ("flapping", "new", "version"):
        if of(kind):
            post_top(deps, cfg, views.render_changes(kind, of(kind), account=account))
    return state


def _reconnected(deps: Deps, account: str, cfg: AlertsConfig, back: list[Change]) -> None:
    groups: dict[str, list[Change]] = {}
    for change in back:
        groups.setdefault(change.alert or "", []).append(change)
    for alert_id, group in groups.items():
        record = deps.store.get_request(ALERT_PREFIX + alert_id) if alert_id else None
        if record is None or not record.get("ts"):
            post_top(deps, cfg, views.render_reconnected(group, still_down=0))
            continue
        returned = {c.old.id for c in group if c.old is not None}
        still = [i for i in record["open"] if i not in returned]
        _post(deps, record["channel"], views.render_reconnected(group, still_down=len(still)),
              thread_ts=record.get("thread") or record["ts"])  # fmt: skip
        new_state = "open" if still else "recovered"
        deps.store.transition_request(
            ALERT_PREFIX + alert_id, expect_state="open", new_state=new_state,
            changes={"open": still, "back": {**record.get("back", {}),
                     **{c.old.id: c.agent.id for c in group if c.old is not None}}},
        )  # fmt: skip
        if not still:
            agents = [Agent.from_data(a) for a in record["agents"]]
            longest = max((c.seconds or 0.0) for c in group)
            outage = max(longest, deps.clock() - float(record["since"]))
            _edit(deps, record["channel"], record["ts"], views.render_recovered(
                agents, account=account, outage_seconds=outage, alert_id=alert_id))  # fmt: skip


def post_top(deps: Deps, cfg: AlertsConfig, message: dict[str, Any]) -> Posted:
    """A top-level alert in `cfg.channel`, unless the channel had `cfg.max_alerts` of them in
    `cfg.alert_window`: then it goes into the thread of the latest one, so a storm of changes
    never floods a channel. (Accounts sharing a channel share its count; each applies its own
    limit.) A held alert's own reply is what a later "recovered" edits, never the top message
    of another alert."""
    channel, limit, window = cfg.channel, cfg.max_alerts, cfg.alert_window
    now = deps.clock()
    key = RATE_PREFIX + channel
    record = deps.store.get_request(key) or {"state": "rate", "posts": [], "last_ts": None}
    posts = [t for t in record.get("posts", []) if now - float(t) < window]
    last_ts = record.get("last_ts")
    if len(posts) >= limit and last_ts:
        held = int(record.get("held", 0)) + 1
        deps.store.put_request(key, {**record, "posts": posts, "held": held},
                               ttl_seconds=window * 2)  # fmt: skip
        if held == 1:
            _post(deps, channel, views.render_rate_limited(held), thread_ts=str(last_ts))
        reply = _post(deps, channel, message, thread_ts=str(last_ts))
        return Posted(reply, str(last_ts))
    ts = _post(deps, channel, message)
    if ts:
        deps.store.put_request(
            key, {"state": "rate", "posts": [*posts, now], "last_ts": ts, "held": 0},
            ttl_seconds=window * 2,
        )  # fmt: skip
    return Posted(ts, ts)


def _post(
    deps: Deps, channel: str, message: dict[str, Any], *, thread_ts: str | None = None
) -> str | None:
    try:
        response = deps.slack.chat_postMessage(
            channel=channel, thread_ts=thread_ts, unfurl_links=False, unfurl_media=False,
            **message,
        )  # fmt: skip
    except SlackApiError as error:
        log.warning("could not post an alert to %s: %s", channel, error.response.get("error"))
        return None
    ts = response.get("ts")
    return str(ts) if ts else None


def _edit(deps: Deps, channel: str, ts: str, message: dict[str, Any]) -> None:
    try:
        deps.slack.chat_update(channel=channel, ts=ts, **message)
    except SlackApiError as error:
        log.warning("could not edit alert %s: %s", ts, error.response.get("error"))


# --- "List them" -------------------------------------------------------------------------------


def show_alert_agents(inv: Invocation, deps: Deps, alert_id: str) -> None:
    """The agents of one alert, privately, as last seen; Details for those back online."""
    if "viewer" not in deps.roles(inv.user_id):
        inv.private(
            render_error("You may not look at ngrok agents: ask an admin for roles.viewer.")
        )
        return
    record = deps.store.get_request(ALERT_PREFIX + alert_id[:40])
    if record is None:
        inv.private(render_error("This alert is too old; its list is no longer kept."))
        return
    back: dict[str, str] = record.get("back", {})
    rows = [
        views.AgentState(agent, back.get(agent.id))
        for agent in (Agent.from_data(a) for a in record["agents"])
    ]
    title = f"{len(rows)} agent(s) of this alert ({len(record['open'])} still down)"
    context = ButtonContext(inv.channel_id, inv.thread_ts, deps.settings.approval_secret)
    inv.private(views.render_alert_agents(title, rows, now=deps.clock(), context=context))
