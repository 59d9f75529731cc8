"""Every job the bot runs after an ack, by name and lane: what the listeners enqueue and what
a consumer process runs. Payloads are plain JSON (bot/jobs.py), so an invocation travels as
data (who, where, the response_url) and is rebuilt here with this process's clients.

The urgent lane (bot.jobs) holds what an approved action needs and the decisions about
approvals: the click that approves, cancels or decides a request (JOB_DECISION, JOB_DENY_REASON,
every fleet-run button), the first looks for a restarted agent, an update's restart,
expiries and recovery. None of them waits for the non-urgent ngrok budget (their reads are
urgent; the rest is the store and Slack), so they never hold an urgent thread while listings
drain the budget. Everything else, and all that reads with the non-urgent budget (listings,
details, prompts, Home, digests, the watcher, fleet-run ticks), is in the normal lane."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from bot.deps import Deps
from bot.jobs import Lane
from bot.slack.groups import RolesUnconfirmed
from bot.slack.invocation import Invocation
from bot.slack.views.errors import SORRY, render_error
from bot.state.replays import first_delivery
from commands.approval import (
    JOB_EXPIRE_REQUEST,
    JOB_FINISH_UPDATE,
    JOB_SUCCESSOR,
    JOB_SUCCESSOR_LATE,
    expire_request,
    finish_update,
    report_successor,
)
from commands.clicks import run_click
from commands.digest import JOB_DIGEST, run_digest
from commands.fleet import run_click as run_fleet_click
from commands.fleet_jobs import JOB_RUN_CLICK, register_fleet_jobs
from commands.grammar import ListSessions, ParseError, SessionQuery, parse_command
from commands.home import JOB_HOME, publish_home
from commands.lost_replies import JOB_RECOVER_REPLIES, recover_replies, run_kept
from commands.recovery import recover_actions
from commands.router import route, run_mention
from commands.two_person import deny_with_reason
from commands.watch import JOB_WATCH, JOB_WATCH_KEEPER, keep_watching, run_watch

log = logging.getLogger("ngrok_ops.jobs")

JOB_COMMAND = "command"
JOB_MENTION = "mention"
JOB_SHORTCUT = "shortcut"
JOB_CLICK = "click"
JOB_DECISION = "decision"  # a click that decides an approval: run_click, in the urgent lane
JOB_DENY_REASON = "deny_reason"
JOB_RECOVER = "recover_actions"


def run_command(deps: Deps, payload: dict[str, Any]) -> None:
    """A slash command; its text was parsed once already to answer errors in the ack."""
    inv = Invocation.from_data(payload["inv"], deps.slack)
    trigger_id = payload.get("trigger_id")
    if not first_delivery(deps.store, "command", trigger_id):
        log.warning("ignored a replayed slash command (trigger %s)", str(trigger_id)[:40])
        return
    try:
        command = parse_command(str(payload.get("text") or ""))
    except ParseError as error:
        inv.private(render_error(error.message, error.usage))
        return
    route(inv, deps, command)


def run_mention_job(deps: Deps, payload: dict[str, Any]) -> None:
    inv = Invocation.from_data(payload["inv"], deps.slack)
    run_mention(inv, deps, payload.get("event_id"), str(payload.get("text") or ""))


def run_shortcut(deps: Deps, payload: dict[str, Any]) -> None:
    route(Invocation.from_data(payload["inv"], deps.slack), deps, ListSessions(SessionQuery()))


def run_deny_reason(deps: Deps, payload: dict[str, Any]) -> None:
    inv = Invocation.from_data(payload["inv"], deps.slack)
    deny_with_reason(inv, deps, str(payload.get("token") or ""), str(payload.get("reason") or ""))


def sorry_for(error: BaseException) -> str:
    """The sentence for a job that failed: a known cause (Slack could not confirm a group
    role) says itself, the rest is SORRY."""
    return error.sentence if isinstance(error, RolesUnconfirmed) else SORRY


def tell_sorry(deps: Deps, payload: dict[str, Any], error: Exception) -> None:
    """A job the user started failed: they still hear something."""
    Invocation.from_data(payload["inv"], deps.slack).private(render_error(sorry_for(error)))


UserJob = Callable[[Deps, dict[str, Any]], None]


def register_jobs(deps: Deps) -> None:
    """Binds every job name to its handler in this process; the only place names meet code."""
    jobs = deps.jobs
    user_jobs: tuple[tuple[str, UserJob, Lane], ...] = (
        (JOB_COMMAND, run_command, "normal"),
        (JOB_MENTION, run_mention_job, "normal"),
        (JOB_SHORTCUT, run_shortcut, "normal"),
        (JOB_CLICK, run_click, "normal"),
        (JOB_DECISION, run_click, "urgent"),
        (JOB_DENY_REASON, run_deny_reason, "urgent"),
        # every run button (approve, ask, decide, plan, pause, resume, cancel): store and
        # Slack only
        (JOB_RUN_CLICK, run_fleet_click, "urgent"),
    )
    for name, handler, lane in user_jobs:
        # Someone waits for these: failures are told, and a reply its consumer took with it
        # when it died is told by recover_replies.
        jobs.register(name, partial(run_kept, deps, handler, tell_sorry), lane=lane)
    jobs.register(JOB_SUCCESSOR, partial(report_successor, deps), lane="urgent")
    jobs.register(JOB_SUCCESSOR_LATE, partial(report_successor, deps))
    jobs.register(JOB_FINISH_UPDATE, partial(finish_update, deps), lane="urgent")
    jobs.register(
        JOB_EXPIRE_REQUEST,
        lambda payload: expire_request(deps, str(payload["request_id"])),
        lane="urgent",
    )
    jobs.register(JOB_RECOVER, partial(recover_actions, deps), lane="urgent")
    jobs.every_minute(JOB_RECOVER)
    jobs.register(JOB_RECOVER_REPLIES, partial(recover_replies, deps), lane="urgent")
    jobs.every_minute(JOB_RECOVER_REPLIES)
    jobs.register(JOB_WATCH, partial(run_watch, deps))
    jobs.register(JOB_WATCH_KEEPER, partial(keep_watching, deps))
    jobs.every_minute(JOB_WATCH_KEEPER)
    jobs.register(JOB_HOME, lambda payload: publish_home(deps, str(payload["user_id"])))
    jobs.register(JOB_DIGEST, partial(run_digest, deps))
    jobs.every_minute(JOB_DIGEST)
    register_fleet_jobs(deps)
