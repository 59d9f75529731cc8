"""The console's loop: typed lines become signed Slack requests to the real app, and what
the app sends back is printed with numbered choices to click.

Nothing goes around the app: a command is a `/ngrok` slash-command request and a number is
a `block_actions` click, both dispatched to the Bolt app from `create_app`, so policy,
approvals, the store and audit run exactly as they do for Slack.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.parse
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.console.loopback import Delivery, LoopbackSlack, Outbox
from bot.console.render import Choice, clean, render_message
from bot.deps import Deps
from bot.slack.ids import SLASH_COMMAND
from bot.slack.views.progress import is_working

log = logging.getLogger("ngrok_ops.console")

REPLY_TIMEOUT = 300.0  # a listing of a very large account, paced at 120 requests a minute
CHOICE = re.compile(r"\d+(\.\d+)?")
QUIT = ("quit", "exit", r"\q")


def wait_for_replies(deps: Deps, timeout: float = REPLY_TIMEOUT) -> bool:
    """Blocks until the work started by the last request has finished (and so has sent
    its replies); False when it is still running after `timeout`. The one place that knows
    how work is queued: dispatch returns after the listener enqueued, so an idle pool means
    every reply is in the outbox."""
    return deps.jobs.wait_idle(timeout)


@dataclass(frozen=True)
class Where:
    """The acting user and the channel the console pretends to type in."""

    user: str
    channel: str


class Console:
    """One user's session with the app: dispatch, wait, print, remember the choices."""

    def __init__(
        self,
        app: App,
        deps: Deps,
        outbox: Outbox,
        slack: LoopbackSlack,
        where: Where,
        out: TextIO,
    ) -> None:
        self._app, self._deps, self._outbox = app, deps, outbox
        self._slack, self._where, self._out = slack, where, out
        self._verifier = SignatureVerifier(deps.settings.slack_signing_secret)
        self._choices: dict[str, tuple[Choice, Delivery]] = {}

    def handle_line(self, line: str, *, echo: bool = False) -> None:
        """A command, a choice number, or nothing (show what arrived since). With `echo`
        (input from a pipe) the line is printed first, so the output reads as a transcript."""
        text = line.strip()
        if text.startswith(SLASH_COMMAND):
            text = text[len(SLASH_COMMAND) :].strip()
        if echo and text:
            picked = self._choices.get(text)
            what = f"{SLASH_COMMAND} {text}"
            if CHOICE.fullmatch(text):
                what = f"[{text}] {picked[0].label}" if picked else f"[{text}]"
            self._print(f">>> {clean(what)}")
        if CHOICE.fullmatch(text):
            self.click(text)
        elif text:
            self.command(text)
        else:
            self.show(self._outbox.take_all())

    def command(self, text: str) -> None:
        """Sends `/ngrok <text>` as Slack would and prints the replies."""
        body = urllib.parse.urlencode(
            {
                "token": "console", "team_id": "T0CONSOLE", "team_domain": "console",
                "channel_id": self._where.channel, "channel_name": "console",
                "user_id": self._where.user, "user_name": self._where.user.lower(),
                "command": SLASH_COMMAND, "text": text, "api_app_id": "A0CONSOLE",
                "response_url": self._slack.new_response_url(channel=self._where.channel),
                "trigger_id": f"{time.time():.0f}.{uuid.uuid4().hex}",  # unique, as Slack's
            }
        )  # fmt: skip
        self._dispatch(body, "application/x-www-form-urlencoded")

    def click(self, number: str) -> None:
        """Clicks choice `number` of the last output, as a block_actions request."""
        found = self._choices.get(number)
        if found is None:
            options = sorted(n for n in self._choices if n.startswith(number + "."))
            hint = f"; pick one of {', '.join(options)}" if options else ""
            self._print(f"There is no choice {number} in the last output{hint}.")
            return
        choice, delivery = found
        if choice.confirm:
            self._print(f"(Slack asks first: {choice.confirm} Confirmed.)")
        public = delivery.kind in ("public", "edit")
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": self._where.user, "username": self._where.user.lower(),
                     "name": self._where.user.lower(), "team_id": "T0CONSOLE"},
            "api_app_id": "A0CONSOLE", "token": "console", "trigger_id": "console.click",
            "team": {"id": "T0CONSOLE", "domain": "console"},
            "container": {"type": "message", "message_ts": delivery.ts,
                          "channel_id": delivery.channel, "is_ephemeral": not public},
            "channel": {"id": delivery.channel, "name": "console"},
            "response_url": self._slack.new_response_url(
                channel=delivery.channel, message_ts=delivery.ts
            ),
            "actions": [{**choice.action, "action_ts": f"{time.time():.6f}"}],
        }  # fmt: skip
        if public:
            payload["message"] = {"type": "message", "ts": delivery.ts, "user": "U0NGROKOPS",
                                  "text": delivery.message.get("text", "")}  # fmt: skip
            if delivery.thread_ts:
                payload["message"]["thread_ts"] = delivery.thread_ts
        body = "payload=" + urllib.parse.quote(json.dumps(payload))
        self._dispatch(body, "application/x-www-form-urlencoded")

    def _dispatch(self, body: str, content_type: str) -> None:
        timestamp = str(int(time.time()))
        signature = self._verifier.generate_signature(timestamp=timestamp, body=body) or ""
        headers: dict[str, str | Sequence[str]] = {
            "content-type": [content_type],
            "x-slack-request-timestamp": [timestamp],
            "x-slack-signature": [signature],
        }
        response = self._app.dispatch(BoltRequest(body=body, headers=headers))
        if response.status != 200:
            self._print(f"The app answered HTTP {response.status}: {clean(response.body[:200])}")
        elif response.body:
            self._outbox.add(Delivery("ack", _ack_message(response.body), self._where.channel))
        if not wait_for_replies(self._deps):
            self._print("Still working after a long wait; press Enter later to see the answer.")
        self.show(self._outbox.take_all())

    def show(self, deliveries: list[Delivery]) -> None:
        """Prints messages with choices numbered from 1. The numbers stay valid until an
        output offers new ones, so `help` or `audit` in between does not void a list's."""
        # A "working…" placeholder that its answer already replaced is not worth a line.
        if any(not is_working(d.message) for d in deliveries):
            deliveries = [d for d in deliveries if not is_working(d.message)]
        if not deliveries:
            return
        offered: dict[str, tuple[Choice, Delivery]] = {}
        number = 1
        for delivery in deliveries:
            lines, choices = render_message(
                delivery.message, self._label(delivery), first_choice=number
            )
            for choice in choices:
                offered[choice.number] = (choice, delivery)
            number += len({c.number.split(".")[0] for c in choices})
            self._print("\n".join(lines))
        self._print("")
        if offered:
            self._choices = offered

    def _label(self, delivery: Delivery) -> str:
        thread = f", in thread {delivery.thread_ts}" if delivery.thread_ts else ""
        who = "only you see this"
        if delivery.to_user and delivery.to_user != self._where.user:
            who = f"only {delivery.to_user} sees this"
        return {
            "ack": f"private: {who}",
            "private": f"private: {who}{thread}",
            "public": f"public in {delivery.channel}{thread}: everyone there sees this",
            "replace": "replaces the message you clicked",
            "edit": f"edits public message {delivery.ts} in {delivery.channel}",
        }[delivery.kind]

    def _print(self, text: str) -> None:
        print(text, file=self._out, flush=True)


def _ack_message(body: str) -> dict[str, Any]:
    """The message in an ack's body (a parse error's answer), or the body as text."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return {"text": body}
    return parsed if isinstance(parsed, dict) else {"text": body}
