"""The Bolt listener for every fleet-run button: ack, then one job naming the button (the
same shape as commands.listeners, kept apart so the run's buttons live with the run)."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.deps import Deps
from bot.slack import ids
from bot.slack.blocks import value_of_action
from commands.fleet_jobs import JOB_RUN_CLICK
from commands.listeners import click_invocation

KIND_OF = {
    ids.ACTION_RUN_APPROVE: "approve",
    ids.ACTION_RUN_ASK: "ask",
    ids.ACTION_RUN_TP_APPROVE: "tp_approve",
    ids.ACTION_RUN_DENY: "deny",
    ids.ACTION_RUN_PAUSE: "pause",
    ids.ACTION_RUN_RESUME: "resume",
    ids.ACTION_RUN_CANCEL: "cancel",
}


def handle_run_button(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
    client: WebClient, *, deps: Deps,
) -> None:  # fmt: skip
    ack()
    inv = click_invocation(body, respond, client)
    kind = KIND_OF.get(str(action.get("action_id")), "")
    payload = {"inv": inv.to_data(), "kind": kind, "value": value_of_action(action)}
    deps.jobs.submit(JOB_RUN_CLICK, payload)
