"""The only functions with Bolt signatures: `/ngrok`, `@ngrok-ops`, the message shortcut,
and every button.

Each acks on its first line and hands the work to bot.jobs, so a slow ngrok API can never
hold a Bolt listener thread (and with it the ack of someone else's request). Clicks on
ephemeral messages do not say which thread they came from, so session buttons carry channel
and thread in their value and approval buttons in their signed token.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, BoltContext, Respond
from slack_sdk import WebClient

from bot.deps import Deps
from bot.ngrok.models import as_action
from bot.slack.blocks import ButtonValue, decode_button_value, value_of_action
from bot.slack.invocation import Invocation, Placeholder
from bot.slack.views.approvals import REASON_ACTION, REASON_BLOCK
from bot.slack.views.errors import SORRY, render_error
from commands.approval import INVALID_BUTTON
from commands.approve import approve_own_request, cancel_request
from commands.details import show_session
from commands.grammar import (
    Help,
    ListSessions,
    ParseError,
    SessionQuery,
    parse_command,
    strip_mention,
)
from commands.request import request_action
from commands.router import route, run_mention, working_message
from commands.sessions import export_sessions, share_list, turn_page
from commands.two_person import ask_for_approval, ask_reason, decide, deny_with_reason

log = logging.getLogger("ngrok_ops.listeners")

Listener = Callable[..., None]


def run_later(inv: Invocation, deps: Deps, fn: Callable[..., None], *args: Any) -> None:
    """Hands work to the job pool; an unexpected error still gets a reply."""
    deps.jobs.submit(fn, inv, deps, *args, on_error=lambda _: inv.private(render_error(SORRY)))


# --- what people type ------------------------------------------------------------------------


def handle_slash_command(
    ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient, *, deps: Deps
) -> None:
    """`/ngrok <text>`: parse errors are answered in the ack itself, the rest later."""
    try:
        parsed = parse_command(command.get("text") or "")
    except ParseError as error:
        ack(**render_error(error.message, error.usage))
        return
    # The ack itself says the bot is on it; the answer replaces it through the response_url.
    placeholder = Placeholder("none" if isinstance(parsed, Help) else "ack")
    if placeholder.shown == "ack":
        ack(**working_message(parsed))
    else:
        ack()
    inv = Invocation(
        entry="command",
        user_id=command["user_id"],
        channel_id=command["channel_id"],
        thread_ts=None,
        client=client,
        respond=respond,
        placeholder=placeholder,
    )
    run_later(inv, deps, route, parsed)


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
    run_later(inv, deps, route, ListSessions(SessionQuery()))


# --- buttons -----------------------------------------------------------------------------------


def click_invocation(
    body: dict[str, Any], respond: Respond, client: WebClient, value: ButtonValue | None = None
) -> Invocation:
    """Who clicked, and where replies go: the value's channel/thread, else the payload's."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id", "")
    thread = container.get("thread_ts") or message.get("thread_ts")
    if value is not None and value.channel_id:
        channel, thread = value.channel_id, value.thread_ts or None
    return Invocation(
        entry="action",
        user_id=(body.get("user") or {}).get("id", ""),
        channel_id=channel,
        thread_ts=thread,
        client=client,
        respond=respond,
    )


def refuse_invalid_button(inv: Invocation, deps: Deps) -> None:
    inv.private(render_error(INVALID_BUTTON))


def _session_click(
    run: Callable[[Invocation, Deps, ButtonValue], None],
    ack: Ack,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: Respond,
    client: WebClient,
    deps: Deps,
) -> None:
    """A button whose value names a session (or a page of sessions)."""
    ack()
    try:
        value = decode_button_value(value_of_action(action))
    except ValueError as error:
        log.warning("rejected a malformed button value: %s", error)
        run_later(click_invocation(body, respond, client), deps, refuse_invalid_button)
        return
    run_later(click_invocation(body, respond, client, value), deps, run, value)


def _token_click(
    run: Callable[[Invocation, Deps, str], None],
    ack: Ack,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: Respond,
    client: WebClient,
    deps: Deps,
) -> None:
    """A button whose value is a signed approval token."""
    ack()
    run_later(click_invocation(body, respond, client), deps, run, value_of_action(action))


def open_details(inv: Invocation, deps: Deps, value: ButtonValue) -> None:
    show_session(inv, deps, value.session_id)


def open_request(inv: Invocation, deps: Deps, value: ButtonValue) -> None:
    """Restart / Update / Stop on a list or detail view: the same prompt as typing it."""
    action = as_action(value.op)
    if action is None:
        refuse_invalid_button(inv, deps)
        return
    request_action(inv, deps, action, value.session_id)


def open_page(inv: Invocation, deps: Deps, value: ButtonValue) -> None:
    turn_page(inv, deps, value.query, value.cursor)


def open_export(inv: Invocation, deps: Deps, value: ButtonValue) -> None:
    export_sessions(inv, deps, value.query)


def open_share(inv: Invocation, deps: Deps, value: ButtonValue) -> None:
    """Post to channel: a list page (op "page") or one agent's details."""
    if value.op == "page":
        share_list(inv, deps, value.query, value.cursor)
    else:
        show_session(inv, deps, value.session_id, shared=True)


def approve_two_person(inv: Invocation, deps: Deps, token: str) -> None:
    decide(inv, deps, token, approve=True)


def handle_details(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _session_click(open_details, ack, body, action, respond, client, deps)


def handle_request(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _session_click(open_request, ack, body, action, respond, client, deps)


def handle_page(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _session_click(open_page, ack, body, action, respond, client, deps)


def handle_export(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _session_click(open_export, ack, body, action, respond, client, deps)


def handle_share(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _session_click(open_share, ack, body, action, respond, client, deps)


def handle_approve(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _token_click(approve_own_request, ack, body, action, respond, client, deps)


def handle_cancel(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _token_click(cancel_request, ack, body, action, respond, client, deps)


def handle_ask_approval(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _token_click(ask_for_approval, ack, body, action, respond, client, deps)


def handle_two_person_approve(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _token_click(approve_two_person, ack, body, action, respond, client, deps)


def handle_two_person_deny(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    """Deny (or withdraw): the job opens the reason modal with this click's trigger_id."""
    ack()
    inv = click_invocation(body, respond, client)
    run_later(inv, deps, ask_reason, value_of_action(action), str(body.get("trigger_id") or ""))


# --- modals ------------------------------------------------------------------------------------


def handle_reason_submission(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, *, deps: Deps
) -> None:
    """The reason modal of Deny / withdraw: closes at once, the decision runs as a job."""
    ack()
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
        token, channel, thread = str(meta["t"]), str(meta["ch"]), str(meta.get("th") or "")
    except (ValueError, KeyError, TypeError):
        log.warning("rejected a reason modal with malformed private_metadata")
        return
    state = ((view.get("state") or {}).get("values") or {}).get(REASON_BLOCK) or {}
    reason = str((state.get(REASON_ACTION) or {}).get("value") or "")
    inv = Invocation(
        entry="action",
        user_id=(body.get("user") or {}).get("id", ""),
        channel_id=channel,
        thread_ts=thread or None,
        client=client,
    )
    run_later(inv, deps, deny_with_reason, token, reason)
