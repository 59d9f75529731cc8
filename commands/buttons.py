"""Button clicks: Details, Restart/Update/Stop, Older/Newer, and the approval buttons.

Clicks on ephemeral messages do not say which thread they came from, so session buttons
carry channel and thread in their value and approval buttons in their signed token.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.blocks import ButtonValue, decode_button_value, value_of_action
from bot.deps import Deps
from bot.views_actions import render_error
from commands.context import Invocation
from commands.control import INVALID_BUTTON, approve_own_request, cancel_request, request_action
from commands.entry import run_later
from commands.session import show_session
from commands.sessions import turn_page
from commands.two_person import ask_for_approval, decide

log = logging.getLogger("ngrok_ops.buttons")


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


def _session_button(
    body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
) -> tuple[Invocation, ButtonValue] | None:
    try:
        value = decode_button_value(value_of_action(action))
    except ValueError as error:
        log.warning("rejected a malformed button value: %s", error)
        click_invocation(body, respond, client).private(render_error(INVALID_BUTTON))
        return None
    return click_invocation(body, respond, client, value), value


def handle_details(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient,
    *, deps: Deps,
) -> None:  # fmt: skip
    ack()
    clicked = _session_button(body, action, respond, client)
    if clicked:
        inv, value = clicked
        run_later(inv, deps, show_session, value.session_id)


def handle_request(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient,
    *, deps: Deps,
) -> None:  # fmt: skip
    """Restart / Update / Stop on a list or detail view: the same prompt as typing it."""
    ack()
    clicked = _session_button(body, action, respond, client)
    if clicked:
        inv, value = clicked
        if value.op == "details":
            run_later(inv, deps, show_session, value.session_id)
        else:
            run_later(inv, deps, request_action, value.op, value.session_id)


def handle_page(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient,
    *, deps: Deps,
) -> None:  # fmt: skip
    ack()
    clicked = _session_button(body, action, respond, client)
    if clicked:
        inv, value = clicked
        run_later(inv, deps, turn_page, value.query, value.cursor)


def _token_click(
    body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
) -> tuple[Invocation, str]:
    return click_invocation(body, respond, client), value_of_action(action)


def handle_approve(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient,
    *, deps: Deps,
) -> None:  # fmt: skip
    ack()
    inv, token = _token_click(body, action, respond, client)
    run_later(inv, deps, approve_own_request, token)


def handle_cancel(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient,
    *, deps: Deps,
) -> None:  # fmt: skip
    ack()
    inv, token = _token_click(body, action, respond, client)
    run_later(inv, deps, cancel_request, token)


def handle_ask_approval(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient,
    *, deps: Deps,
) -> None:  # fmt: skip
    ack()
    inv, token = _token_click(body, action, respond, client)
    run_later(inv, deps, ask_for_approval, token)


def handle_two_person_approve(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient,
    *, deps: Deps,
) -> None:  # fmt: skip
    ack()
    inv, token = _token_click(body, action, respond, client)
    run_later(inv, deps, lambda i, d: decide(i, d, token, approve=True))


def handle_two_person_deny(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient,
    *, deps: Deps,
) -> None:  # fmt: skip
    ack()
    inv, token = _token_click(body, action, respond, client)
    run_later(inv, deps, lambda i, d: decide(i, d, token, approve=False))
