"""What each button runs, in the consumer: decode its value, then call the verb.

Session buttons (Details, Restart/Update/Stop, Older/Newer) carry a sealed value (HMAC)
naming their channel and thread, because a click on an ephemeral message does not say which
thread it came from; the channel must match the one Slack signed, so a button can never move
a click into another channel's permissions or ngrok account. Approval buttons carry a signed
token, checked by the verb.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bot.deps import Deps
from bot.ngrok.models import as_action
from bot.slack.blocks import ButtonValue, decode_button_value
from bot.slack.buttons import ButtonRefused, check_origin
from bot.slack.invocation import Invocation
from bot.slack.views.errors import render_error
from commands.approval import INVALID_BUTTON
from commands.approve import approve_own_request, cancel_request
from commands.details import show_session
from commands.digest import show_outdated
from commands.home import publish_home
from commands.request import request_action
from commands.sessions import export_sessions, share_list, turn_page
from commands.two_person import ask_for_approval, ask_reason, decide
from commands.watch import show_alert_agents

log = logging.getLogger("ngrok_ops.clicks")


def open_details(inv: Invocation, deps: Deps, value: ButtonValue) -> None:
    show_session(inv, deps, value.session_id)


def open_request(inv: Invocation, deps: Deps, value: ButtonValue) -> None:
    """Restart / Update / Stop on a list or detail view: the same prompt as typing it."""
    action = as_action(value.op)
    if action is None:
        inv.private(render_error(INVALID_BUTTON))
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


def approve_two_person(inv: Invocation, deps: Deps, token: str, trigger_id: str) -> None:
    decide(inv, deps, token, approve=True)


SESSION_CLICKS: dict[str, Callable[[Invocation, Deps, ButtonValue], None]] = {
    "details": open_details,
    "request": open_request,
    "page": open_page,
    "export": open_export,
    "share": open_share,
}
# Clicks whose value the verb reads itself (a signed approval token, an alert's id).
RAW_CLICKS: dict[str, Callable[[Invocation, Deps, str], None]] = {
    "approve": approve_own_request,
    "cancel": cancel_request,
    "ask_approval": ask_for_approval,
    "alert_agents": show_alert_agents,
    "update_outdated": show_outdated,
}
# Clicks that also need the click's trigger_id (Deny opens the reason modal with it).
TRIGGER_CLICKS: dict[str, Callable[[Invocation, Deps, str, str], None]] = {
    "two_person_approve": approve_two_person,
    "two_person_deny": ask_reason,
}


def run_click(deps: Deps, payload: dict[str, Any]) -> None:
    inv = Invocation.from_data(payload["inv"], deps.slack)
    kind, raw = str(payload.get("kind")), str(payload.get("value") or "")
    if kind in RAW_CLICKS:
        RAW_CLICKS[kind](inv, deps, raw)
        return
    if kind in TRIGGER_CLICKS:
        TRIGGER_CLICKS[kind](inv, deps, raw, str(payload.get("trigger_id") or ""))
        if not inv.channel_id:
            publish_home(deps, inv.user_id)  # clicked on the Home tab: show the new state
        return
    try:
        # inv.channel_id is the channel Slack's signed payload names (listeners.click_origin).
        value = decode_button_value(raw, key=deps.settings.approval_secret)
        check_origin(value.channel_id, inv.channel_id)
    except ValueError as error:
        sentence = error.sentence if isinstance(error, ButtonRefused) else INVALID_BUTTON
        log.warning("refused a session button from %s: %s", inv.user_id, error)
        inv.private(render_error(sentence))
        return
    # The thread comes from the sealed value: a click on an ephemeral does not name it.
    inv = replace(inv, thread_ts=value.thread_ts or inv.thread_ts)
    SESSION_CLICKS[kind](inv, deps, value)
