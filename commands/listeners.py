"""The only functions with Bolt signatures: `/ngrok`, `@ngrok-ops`, the message shortcut,
and every button.

Each verifies what it can for free, acks, and enqueues a job with plain data (commands.jobs
runs it in a consumer process), so the web process never waits on ngrok or renders a list,
and a slow ngrok API can never hold the thread that acks someone else's request. The app runs
with process_before_response (bot.app), so Slack's 200 leaves after the enqueue: nothing but
that one queue write may follow `ack()` here.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import Ack, BoltContext, Respond
from slack_sdk import WebClient

from bot.deps import Deps
from bot.slack import ids
from bot.slack.blocks import value_of_action
from bot.slack.buttons import click_origin
from bot.slack.invocation import Invocation, Placeholder
from bot.slack.views.approvals import REASON_ACTION, REASON_BLOCK
from bot.slack.views.errors import render_error
from commands.fleet_jobs import JOB_RUN_CLICK
from commands.grammar import Help, ParseError, parse_command, strip_mention
from commands.home import JOB_HOME
from commands.jobs import (
    JOB_CLICK,
    JOB_COMMAND,
    JOB_DECISION,
    JOB_DENY_REASON,
    JOB_MENTION,
    JOB_SHORTCUT,
)
from commands.router import working_message

log = logging.getLogger("ngrok_ops.listeners")

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
    payload = {
        "inv": inv.to_data(),
        "text": command.get("text") or "",
        "trigger_id": command.get("trigger_id"),
    }
    deps.jobs.submit(JOB_COMMAND, payload)


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
    payload = {"inv": inv.to_data(), "event_id": body.get("event_id"), "text": text}
    deps.jobs.submit(JOB_MENTION, payload)


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
    deps.jobs.submit(JOB_SHORTCUT, {"inv": inv.to_data()})


# --- buttons -----------------------------------------------------------------------------------


def click_invocation(body: dict[str, Any], respond: Respond, client: WebClient) -> Invocation:
    """Who clicked, and where the click came from (what Slack signed)."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    return Invocation(
        entry="action",
        user_id=(body.get("user") or {}).get("id", ""),
        channel_id=click_origin(body),
        thread_ts=container.get("thread_ts") or message.get("thread_ts"),
        client=client,
        respond=respond,
    )


def _enqueue_click(
    kind: str, ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, deps: Deps, job: str = JOB_CLICK,
) -> None:  # fmt: skip
    """Every button: ack, then one job naming the button and carrying its raw value;
    buttons that decide an approval pass JOB_DECISION (the urgent lane)."""
    ack()
    inv = click_invocation(body, respond, client)
    payload = {
        "inv": inv.to_data(),
        "kind": kind,
        "value": value_of_action(action),
        "trigger_id": body.get("trigger_id"),  # Deny opens a modal with it (valid ~3 s)
    }
    deps.jobs.submit(job, payload)


def handle_details(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _enqueue_click("details", ack, body, action, respond, client, deps)


def handle_request(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _enqueue_click("request", ack, body, action, respond, client, deps)


def handle_page(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _enqueue_click("page", ack, body, action, respond, client, deps)


def handle_export(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _enqueue_click("export", ack, body, action, respond, client, deps)


def handle_share(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _enqueue_click("share", ack, body, action, respond, client, deps)


def handle_approve(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _enqueue_click("approve", ack, body, action, respond, client, deps, JOB_DECISION)


def handle_cancel(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _enqueue_click("cancel", ack, body, action, respond, client, deps, JOB_DECISION)


def handle_ask_approval(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _enqueue_click("ask_approval", ack, body, action, respond, client, deps)


def handle_two_person_approve(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _enqueue_click("two_person_approve", ack, body, action, respond, client, deps, JOB_DECISION)


def handle_two_person_deny(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _enqueue_click("two_person_deny", ack, body, action, respond, client, deps, JOB_DECISION)


def handle_alert_agents(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _enqueue_click("alert_agents", ack, body, action, respond, client, deps)


def handle_update_outdated(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    _enqueue_click("update_outdated", ack, body, action, respond, client, deps)


def handle_link(ack: Ack, *, deps: Deps) -> None:
    """A link button (`jobs`' Progress): Slack opened the URL itself and sends the click
    anyway; an ack and nothing else, so the clicker sees no error and no reply."""
    ack()


# --- the App Home --------------------------------------------------------------------------------


def handle_app_home_opened(ack: Ack, event: dict[str, Any], *, deps: Deps) -> None:
    """The Home tab opened: a job renders it from the watcher's last scan and publishes it."""
    ack()
    if event.get("tab") == "home" and event.get("user"):
        deps.jobs.submit(JOB_HOME, {"user_id": event["user"]})


def handle_home_refresh(ack: Ack, body: dict[str, Any], *, deps: Deps) -> None:
    ack()
    user = (body.get("user") or {}).get("id")
    if user:
        deps.jobs.submit(JOB_HOME, {"user_id": user})


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
    deps.jobs.submit(JOB_DENY_REASON, {"inv": inv.to_data(), "token": token, "reason": reason})


# --- fleet runs ------------------------------------------------------------------------------

RUN_BUTTON_KIND = {
    ids.ACTION_RUN_APPROVE: "approve",
    ids.ACTION_RUN_ASK: "ask",
    ids.ACTION_RUN_TP_APPROVE: "tp_approve",
    ids.ACTION_RUN_DENY: "deny",
    ids.ACTION_RUN_PAUSE: "pause",
    ids.ACTION_RUN_RESUME: "resume",
    ids.ACTION_RUN_CANCEL: "cancel",
    ids.ACTION_RUN_CANARY: "plan",
    ids.ACTION_RUN_BATCH: "plan",
    ids.ACTION_RUN_MAX_FAILURES: "plan",
}


def handle_run_button(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    """Every fleet-run button (preview, two-person request, progress message): one job."""
    ack()
    inv = click_invocation(body, respond, client)
    kind = RUN_BUTTON_KIND.get(str(action.get("action_id")), "")
    payload = {"inv": inv.to_data(), "kind": kind, "value": value_of_action(action)}
    deps.jobs.submit(JOB_RUN_CLICK, payload)
