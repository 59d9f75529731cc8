"""What a parsed command runs: one table from command type to verb, on a job thread."""

from __future__ import annotations

import logging

from bot.deps import Deps
from bot.slack.invocation import Invocation
from bot.slack.views.errors import render_error
from commands.audit import show_audit
from commands.details import show_session
from commands.fleet import preview_run, show_runs
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


def route(inv: Invocation, deps: Deps, command: Command) -> None:
    """Runs one parsed command."""
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
