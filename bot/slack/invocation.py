"""Where a request came from and how to answer it there.

Slash commands, mentions, shortcuts and button clicks each offer different ways to reply:
only some have a `response_url`, slash commands never run in threads, and a click on an
ephemeral message can only be edited through its own `response_url`. `Invocation` hides
that behind three verbs: `private` (only the user sees it), `public` (the channel or
thread sees it) and `replace` (edit the message that was clicked); `answer` is the one
rule for which of them a command's answer uses.

While an answer is not ready, `working` shows that the bot is on it (a slash command's ack
already carries it; a mention gets a placeholder in its thread; a click replaces its
message) and `progress` edits that placeholder at most every `PROGRESS_INTERVAL` seconds.
The first answer afterwards replaces the placeholder, so no verb has to know it exists.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
PROGRESS_INTERVAL = 2.0  # seconds between two edits of a placeholder
# A response_url takes five posts: keep two for the answer and what follows it.
MAX_RESPONSE_URL_EDITS = 2

Shown = Literal["none", "ack", "message", "replaced"]
SHOWN: tuple[Shown, ...] = get_args(Shown)
Settled = Literal["done", "failed", "none"]


class Placeholder:
    """The "working…" message of one invocation: where it is and when it was last edited.
    Mutable and shared by reference, so the frozen Invocation can carry it; `clock` is
    injectable so tests never sleep."""

    def __init__(
        self,
        shown: Shown = "none",
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = PROGRESS_INTERVAL,
    ) -> None:
        self.shown: Shown = shown
        self.ts: str | None = None
        self.edits = 0
        self.interval = interval
        self.clock = clock
        self.last = clock()
        self.lock = threading.Lock()

    @classmethod
    def from_data(cls, shown: object, ts: object) -> Placeholder:
        """The placeholder again in the job's process: what is on screen (not its timer)."""
        known: Shown = next((s for s in SHOWN if s == shown), "none")
        placeholder = cls(known)
        placeholder.ts = ts if isinstance(ts, str) else None
        return placeholder

    def due(self) -> bool:
        """True (and the clock restarted) when an edit may go out now."""
        with self.lock:
            if self.shown == "none" or self.clock() - self.last < self.interval:
                return False
            if self.shown != "message" and self.edits >= MAX_RESPONSE_URL_EDITS:
                return False
            self.last = self.clock()
            self.edits += 1
            return True

    def take(self) -> tuple[Shown, str | None]:
        """What is on screen now; the caller replaces it, so it is forgotten here."""
        with self.lock:
            shown, ts = self.shown, self.ts
            self.shown, self.ts = "none", None
            return shown, ts


@dataclass(frozen=True)
class Invocation:
    """One user's request and the ways to answer it."""

    entry: Entry
    user_id: str
    channel_id: str
    thread_ts: str | None
    client: WebClient
    respond: Respond | None = None
    placeholder: Placeholder = field(default_factory=Placeholder, compare=False, repr=False)

    def to_data(self) -> dict[str, Any]:
        """Plain data for a job: who, where, and the response_url (a URL, not a function)."""
        return {
            "entry": self.entry,
            "user_id": self.user_id,
            "channel_id": self.channel_id,
            "thread_ts": self.thread_ts,
            "response_url": getattr(self.respond, "response_url", None),
            "placeholder": self.placeholder.shown,
            "placeholder_ts": self.placeholder.ts,
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
            placeholder=Placeholder.from_data(data.get("placeholder"), data.get("placeholder_ts")),
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

    # --- the "working…" placeholder ------------------------------------------------------

    def working(self, message: dict[str, Any]) -> None:
        """Shows that the bot is on it, once; the next answer replaces it. A click that
        answers privately has nothing it could replace later, so it shows nothing."""
        with self.placeholder.lock:
            if self.placeholder.shown != "none":
                return
        if self.entry in ("mention", "shortcut"):
            ts = self._post(message)
            if ts:
                self._mark("message", ts)
        elif self.respond is None:
            return
        elif self.entry == "action" and self._respond(message, replace_original=True):
            self._mark("replaced", None)
        elif self.entry == "command" and self._respond(
            message, response_type="ephemeral", replace_original=False
        ):
            self._mark("ack", None)

    def progress(self, message: dict[str, Any]) -> None:
        """Edits the placeholder with how far the work got; at most every ~2 s."""
        if not self.placeholder.due():
            return
        shown, ts = self.placeholder.shown, self.placeholder.ts
        if shown == "message" and ts:
            try:
                self.client.chat_update(channel=self.channel_id, ts=ts, **message)
            except SlackApiError as error:
                log.warning("progress edit failed: %s", error.response.get("error"))
        elif shown in ("ack", "replaced") and self.respond is not None:
            options: dict[str, Any] = {"replace_original": True}
            if shown == "ack":
                options["response_type"] = "ephemeral"
            self._respond(message, **options)

    def _mark(self, shown: Shown, ts: str | None) -> None:
        with self.placeholder.lock:
            self.placeholder.shown, self.placeholder.ts = shown, ts
            self.placeholder.last = self.placeholder.clock()

    def _settle(self, message: dict[str, Any], *, public: bool) -> Settled:
        """Puts the answer where the placeholder is. A public placeholder cannot become a
        private answer, so it is deleted instead; "failed" means the response_url refused,
        so the caller goes straight to the Web API."""
        shown, ts = self.placeholder.take()
        if shown == "message" and ts:
            try:
                if public:
                    self.client.chat_update(channel=self.channel_id, ts=ts, **message)
                    return "done"
                self.client.chat_delete(channel=self.channel_id, ts=ts)
            except SlackApiError as error:
                log.warning("could not replace the placeholder: %s", error.response.get("error"))
            return "none"
        if shown in ("ack", "replaced") and not public and self.respond is not None:
            options: dict[str, Any] = {"replace_original": True}
            if shown == "ack":
                options["response_type"] = "ephemeral"
            return "done" if self._respond(message, **options) else "failed"
        return "none"

    # --- the three ways to answer --------------------------------------------------------

    def private(self, message: dict[str, Any]) -> None:
        """An ephemeral reply to the requester, in the thread when there is one."""
        settled = self._settle(message, public=False)
        if settled == "done":
            return
        if (
            settled == "none"
            and self.respond is not None
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
        ts = self.placeholder.ts
        if self.placeholder.shown == "message" and self._settle(message, public=True) == "done":
            return ts
        return self._post(message)

    def _post(self, message: dict[str, Any]) -> str | None:
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
        self.placeholder.take()  # the replacement goes where the placeholder is
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
