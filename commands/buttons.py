"""Button clicks: Details, Restart/Update/Stop, Older/Newer, and the approval buttons.

Clicks on ephemeral messages do not say which thread they came from, so session buttons
carry channel and thread in their value and approval buttons in their signed token. Every
listener acks on its first line and hands the work to bot.jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.deps import Deps
from bot.slack.blocks import ButtonValue, read_session_click, value_of_action
from bot.slack.buttons import ButtonRefused
from bot.slack.invocation import Invocation
from bot.slack.views.actions import render_error
from commands.control import INVALID_BUTTON, approve_own_request, cancel_request, request_action
from commands.entry import run_later
from commands.session import show_session
from commands.sessions import turn_page
from commands.two_person import ask_for_approval, decide

log = logging.getLogger("ngrok_ops.buttons")

Listener = Callable[..., None]


def click_invocation(
    body: dict[str, Any], respond: Respond, client: WebClient, value: ButtonValue | None = None
) -> Invocation:
    """Who clicked, and where replies go: always the payload's (signed) channel; the thread
    from a sealed value, whose channel `read_session_click` has checked, else the payload's."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id", "")
    thread = container.get("thread_ts") or message.get("thread_ts")
    if value is not None and value.channel_id:
        thread = value.thread_ts or None
    return Invocation(
        entry="action",
        user_id=(body.get("user") or {}).get("id", ""),
        channel_id=channel,
        thread_ts=thread,
        client=client,
        respond=respond,
    )


def refuse_invalid_button(inv: Invocation, deps: Deps, sentence: str = INVALID_BUTTON) -> None:
    inv.private(render_error(sentence))


def session_button(run: Callable[[Invocation, Deps, ButtonValue], None]) -> Listener:
    """A listener for buttons whose value names a session (or a page of sessions)."""

    def listener(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
        client: WebClient, *, deps: Deps,
    ) -> None:  # fmt: skip
        ack()
        try:
            key = deps.settings.approval_secret
            value = read_session_click(body, value_of_action(action), key=key)
        except ValueError as error:
            sentence = error.sentence if isinstance(error, ButtonRefused) else INVALID_BUTTON
            inv = click_invocation(body, respond, client)
            log.warning("refused a session button from %s: %s", inv.user_id, error)
            run_later(inv, deps, refuse_invalid_button, sentence)
            return
        run_later(click_invocation(body, respond, client, value), deps, run, value)

    listener.__qualname__ = f"session_button({run.__name__})"
    return listener


def token_button(run: Callable[[Invocation, Deps, str], None]) -> Listener:
    """A listener for buttons whose value is a signed approval token."""

    def listener(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
        client: WebClient, *, deps: Deps,
    ) -> None:  # fmt: skip
        ack()
        run_later(click_invocation(body, respond, client), deps, run, value_of_action(action))

    name = getattr(run, "__name__", None) or getattr(run, "func", run).__name__
    listener.__qualname__ = f"token_button({name})"
    return listener


def open_details(inv: Invocation, deps: Deps, value: ButtonValue) -> None:
    show_session(inv, deps, value.session_id)


def open_request(inv: Invocation, deps: Deps, value: ButtonValue) -> None:
    """Restart / Update / Stop on a list or detail view: the same prompt as typing it."""
    if value.op not in ("restart", "stop", "update"):
        refuse_invalid_button(inv, deps)
        return
    request_action(inv, deps, value.op, value.session_id)


def open_page(inv: Invocation, deps: Deps, value: ButtonValue) -> None:
    turn_page(inv, deps, value.query, value.cursor)


handle_details = session_button(open_details)
handle_request = session_button(open_request)
handle_page = session_button(open_page)
handle_approve = token_button(approve_own_request)
handle_cancel = token_button(cancel_request)
handle_ask_approval = token_button(ask_for_approval)
handle_two_person_approve = token_button(partial(decide, approve=True))
handle_two_person_deny = token_button(partial(decide, approve=False))
