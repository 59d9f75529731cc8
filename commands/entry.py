"""The three ways in: `/ngrok`, `@ngrok-ops` and the "ngrok sessions" message shortcut.

Every handler acks on its first line and hands the work to bot.jobs, so a slow ngrok API
can never hold a Bolt listener thread (and with it the ack of someone else's request).
One grammar and one router serve all three.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, BoltContext, Respond
from slack_sdk import WebClient

from bot.deps import Deps
from bot.slack.groups import RolesUnconfirmed
from bot.slack.invocation import Invocation
from bot.slack.views.actions import render_error
from bot.state.replays import first_delivery
from commands.control import request_action
from commands.grammar import (
    Command,
    Help,
    ListSessions,
    ParseError,
    RequestAction,
    SessionQuery,
    ShowAudit,
    ShowSession,
    parse_command,
    strip_mention,
)
from commands.info import show_audit, show_help
from commands.session import show_session
from commands.sessions import list_sessions

log = logging.getLogger("ngrok_ops.entry")

SORRY = "Something went wrong on the ngrok-ops side; it has been logged. Please try again."


def route(inv: Invocation, deps: Deps, command: Command) -> None:
    """Runs one parsed command (on a job thread)."""
    if isinstance(command, Help):
        show_help(inv, deps)
    elif isinstance(command, ListSessions):
        list_sessions(inv, deps, command.query)
    elif isinstance(command, ShowSession):
        show_session(inv, deps, command.session_id)
    elif isinstance(command, RequestAction):
        request_action(inv, deps, command.op, command.session_id)
    elif isinstance(command, ShowAudit):
        show_audit(inv, deps, command)


def run_later(inv: Invocation, deps: Deps, fn: Any, *args: Any) -> None:
    """Hands work to the job pool; an unexpected error still gets a reply."""
    deps.jobs.submit(
        fn, inv, deps, *args, on_error=lambda error: inv.private(render_error(sorry_for(error)))
    )


def sorry_for(error: BaseException) -> str:
    """The sentence for a job that failed: a known cause says itself, the rest is SORRY."""
    return error.sentence if isinstance(error, RolesUnconfirmed) else SORRY


def handle_slash_command(
    ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient, *, deps: Deps
) -> None:
    """`/ngrok <text>`: parse errors are answered in the ack itself, the rest later."""
    try:
        parsed = parse_command(command.get("text") or "")
    except ParseError as error:
        ack(**render_error(error.message, error.usage))
        return
    ack()
    inv = Invocation(
        entry="command",
        user_id=command["user_id"],
        channel_id=command["channel_id"],
        thread_ts=None,
        client=client,
        respond=respond,
    )
    run_later(inv, deps, run_command, command.get("trigger_id"), parsed)


def run_command(inv: Invocation, deps: Deps, trigger_id: str | None, command: Command) -> None:
    """Runs a slash command once, even when its signed request is replayed."""
    if not first_delivery(deps.store, "command", trigger_id):
        log.warning("ignored a replayed slash command (trigger %s)", (trigger_id or "")[:40])
        return
    route(inv, deps, command)


def handle_mention(
    ack: Ack,
    event: dict[str, Any],
    body: dict[str, Any],
    context: BoltContext,
    client: WebClient,
    *,
    deps: Deps,
) -> None:
    """`@ngrok-ops <text>` in a channel or thread; replies stay in the thread."""
    ack()
    if not event.get("user") or event.get("bot_id"):
        return  # a bot or a workflow mentioned us: there is nobody to ask or to answer
    inv = Invocation(
        entry="mention",
        user_id=event["user"],
        channel_id=event.get("channel", ""),
        thread_ts=event.get("thread_ts") or event.get("ts"),
        client=client,
    )
    text = strip_mention(event.get("text") or "", context.bot_user_id)
    run_later(inv, deps, run_mention, body.get("event_id"), text)


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


def handle_thread_shortcut(
    ack: Ack, shortcut: dict[str, Any], respond: Respond, client: WebClient, *, deps: Deps
) -> None:
    """The "ngrok sessions" message shortcut: the list goes into that message's thread."""
    ack()
    message = shortcut.get("message") or {}
    inv = Invocation(
        entry="shortcut",
        user_id=(shortcut.get("user") or {}).get("id", ""),
        channel_id=(shortcut.get("channel") or {}).get("id", ""),
        thread_ts=message.get("thread_ts") or message.get("ts"),
        client=client,
        respond=respond,
    )
    run_later(inv, deps, list_sessions, SessionQuery())
