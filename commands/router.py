"""What a parsed command runs: one table from command type to verb, on a job thread."""

from __future__ import annotations

import logging
from typing import Any

from bot.deps import Deps
from bot.slack.invocation import Invocation
from bot.slack.views.errors import render_error
from bot.slack.views.progress import render_working, working_text_for
from commands.audit import show_audit
from commands.details import show_session
from commands.fleet import show_runs
from commands.fleet_preview import preview_run
from commands.grammar import (
    Command,
    FleetAction,
    Help,
    ListSessions,
    ParseError,
    RequestAction,
    ShowAudit,
    ShowRuns,
    ShowSession,
    parse_command,
)
from commands.help import show_help
from commands.request import request_action
from commands.sessions import list_sessions

log = logging.getLogger("ngrok_ops.router")


def working_message(command: Command) -> dict[str, Any]:
    """The placeholder a command shows until its answer is ready."""
    if isinstance(command, ListSessions):
        return render_working(working_text_for("sessions"))
    if isinstance(command, ShowAudit):
        return render_working(working_text_for("audit"))
    if isinstance(command, Help):
        return render_working(working_text_for("help"))
    return render_working(working_text_for("session"))


def route(inv: Invocation, deps: Deps, command: Command) -> None:
    """Runs one parsed command; a placeholder shows until its answer replaces it (a slash
    command's ack already carried one, so then this adds nothing)."""
    if not isinstance(command, Help):
        inv.working(working_message(command))
    if isinstance(command, Help):
        show_help(inv, deps)
    elif isinstance(command, ListSessions):
        list_sessions(inv, deps, command.query)
    elif isinstance(command, ShowSession):
        show_session(inv, deps, command.session_id)
    elif isinstance(command, RequestAction):
        request_action(inv, deps, command.action, command.session_id)
    elif isinstance(command, FleetAction):
        preview_run(inv, deps, command)
    elif isinstance(command, ShowRuns):
        show_runs(inv, deps)
    elif isinstance(command, ShowAudit):
        show_audit(inv, deps, command)


def run_mention(inv: Invocation, deps: Deps, event_id: str | None, text: str) -> None:
    """Parses and runs a mention once, even when Slack delivers the event again."""
    if event_id and not deps.store.consume_nonce(f"event:{event_id}", ttl_seconds=3600):
        log.info("ignored a repeated delivery of event %s", event_id)
        return
    try:
        command = parse_command(text)
    except ParseError as error:
        inv.private(render_error(error.message, error.usage))
        return
    route(inv, deps, command)
