"""Where a request came from and how to answer it there.

Slash commands, mentions, shortcuts and button clicks each offer different ways to reply:
only some have a `response_url`, slash commands never run in threads, and a click on an
ephemeral message can only be edited through its own `response_url`. `Invocation` hides
that behind three verbs: `private` (only the user sees it), `public` (the channel or
thread sees it) and `replace` (edit the message that was clicked); `answer` is the one
rule for which of them a command's answer uses.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from slack_bolt import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger("ngrok_ops.reply")

Entry = Literal["command", "mention", "shortcut", "action"]
ENTRIES: tuple[Entry, ...] = get_args(Entry)

NOT_IN_CHANNEL = (
    "I can't post in this conversation. Invite me with `/invite @ngrok-ops` and try again."
)


@dataclass(frozen=True)
class Invocation:
    """One user's request and the ways to answer it."""

    entry: Entry
    user_id: str
    channel_id: str
    thread_ts: str | None
    client: WebClient
    respond: Respond | None = None

    def to_data(self) -> dict[str, Any]:
        """Plain data for a job: who, where, and the response_url (a URL, not a function)."""
        return {
            "entry": self.entry,
            "user_id": self.user_id,
            "channel_id": self.channel_id,
            "thread_ts": self.thread_ts,
            "response_url": getattr(self.respond, "response_url", None),
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any], client: WebClient) -> Invocation:
        """The invocation again, in the process that runs the job."""
        entry = data.get("entry")
        url = data.get("response_url")
        return cls(
            entry=entry if entry in ENTRIES else "action",
            user_id=str(data.get("user_id") or ""),
            channel_id=str(data.get("channel_id") or ""),
            thread_ts=data.get("thread_ts") or None,
            client=client,
            respond=Respond(response_url=url) if isinstance(url, str) and url else None,
        )

    def answer(self, message: dict[str, Any], *, in_place: bool = False) -> None:
        """A command's answer: in a thread (mention, shortcut) everyone there sees it; a
        slash command's is private; a click replaces its message when `in_place` (paging)
        and otherwise answers privately (a Details click must not replace the list)."""
        if in_place and self.entry == "action":
            self.replace(message)
        elif self.entry in ("mention", "shortcut"):
            self.public(message)
        else:
            self.private(message)

    def private(self, message: dict[str, Any]) -> None:
        """An ephemeral reply to the requester, in the thread when there is one."""
        if (
            self.respond is not None
            and self.thread_ts is None
            and self._respond(message, response_type="ephemeral", replace_original=False)
        ):
            return
        try:
            self.client.chat_postEphemeral(
                channel=self.channel_id, user=self.user_id, thread_ts=self.thread_ts, **message
            )
        except SlackApiError as error:
            log.warning("chat.postEphemeral failed: %s", error.response.get("error"))
            if self.respond is not None and self.thread_ts is not None:
                self._respond(message, response_type="ephemeral", replace_original=False)

    def public(self, message: dict[str, Any]) -> str | None:
        """A message everyone in the channel or thread sees; returns its ts for later edits."""
        try:
            response = self.client.chat_postMessage(
                channel=self.channel_id,
                thread_ts=self.thread_ts,
                unfurl_links=False,
                unfurl_media=False,
                **message,
            )
        except SlackApiError as error:
            code = error.response.get("error")
            log.warning("chat.postMessage to %s failed: %s", self.channel_id, code)
            if code in ("not_in_channel", "channel_not_found"):
                self.private({"text": NOT_IN_CHANNEL})
            else:
                self.private({"text": f"Slack refused my message here ({code}); it is logged."})
            return None
        return response.get("ts")

    def replace(self, message: dict[str, Any]) -> None:
        """Edits the clicked message in place (the only way to change an ephemeral)."""
        if self.respond is None or not self._respond(message, replace_original=True):
            self.private(message)

    def _respond(self, message: dict[str, Any], **options: Any) -> bool:
        """True when Slack took the reply; respond() reports failures as a status, so
        a lost reply is noticed and logged here instead of vanishing."""
        assert self.respond is not None
        try:
            result = self.respond(**message, **options)
        except Exception:
            log.exception("response_url reply raised")
            return False
        if result.status_code != 200:
            log.warning(
                "response_url reply failed with HTTP %s: %s", result.status_code, result.body[:200]
            )
            return False
        return True
