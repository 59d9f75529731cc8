"""Signed session-button values and plan choices, and where a click really came from.

Session buttons (Details, Restart/Update/Stop, Older/Newer) carry the channel and thread of
the conversation, because a click on an ephemeral message does not say which thread it came
from. Anyone can post a block_actions payload with any value, so the value is sealed with a
short HMAC under the approval key, and the channel it names must equal the channel Slack put
in the signed payload. Permissions and the ngrok account follow that signed channel only.

Format: `<compact JSON>.<base64url(HMAC-SHA256(key, label + JSON)[:16])>`: 23 characters on
top of the JSON, which keeps an overflow option under Slack's 150 characters. The label keeps
these MACs apart from approval tokens, which are signed with the same key, and the options
of a fleet-run preview's plan menus (`PlanChoice`) apart from session buttons.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from bot.slack.ids import CHANNEL_ID_RE

SIGNATURE_BYTES = 16
SIGNATURE_CHARS = 22  # base64url of 16 bytes, unpadded
_LABEL = b"ngrok-ops session button v1\n"
_PLAN_LABEL = b"ngrok-ops plan choice v1\n"

INVALID = (
    "This button is not valid here (it was altered, or signed by another installation); "
    "nothing was done."
)
OTHER_CHANNEL = (
    "This button belongs to another channel, so nothing was done; use the buttons in the "
    "channel where the list or details were shown."
)


class ButtonRefused(ValueError):
    """A click that must not run: `sentence` is for the clicker, `detail` for the log."""

    def __init__(self, sentence: str, detail: str) -> None:
        super().__init__(detail)
        self.sentence = sentence
        self.detail = detail


def seal(encoded: str, key: bytes, *, label: bytes = _LABEL) -> str:
    """The value with its MAC appended; a missing key is a wiring bug, never unsigned output."""
    return f"{encoded}.{_mac(encoded, key, label)}"


def unseal(raw: str, key: bytes, *, label: bytes = _LABEL) -> str:
    """The JSON of a value this installation sealed; ButtonRefused for anything else."""
    encoded, dot, signature = raw.rpartition(".")
    if not dot or len(signature) != SIGNATURE_CHARS:
        raise ButtonRefused(INVALID, "the button value carries no signature")
    if not hmac.compare_digest(_mac(encoded, key, label), signature):
        raise ButtonRefused(INVALID, "the button value's signature does not match")
    return encoded


# --- a fleet run preview's plan menus ----------------------------------------------------------

PlanOption = Literal["canary", "batch", "max_failures"]
PLAN_OPTIONS: tuple[PlanOption, ...] = get_args(PlanOption)
_RUN_ID = re.compile(r"[0-9a-f]{6,32}")
_PLAN_VALUE = re.compile(r"[0-9]{0,6}")


@dataclass(frozen=True)
class PlanChoice:
    """One option of a preview's plan menu: which run, which setting and the value picked
    (digits; empty for max_failures means the default, stop after the first failing batch),
    and the channel the preview was shown in. Sealed like a session button (under its own
    label); the commands layer checks the value as it checks a typed option."""

    run_id: str
    option: PlanOption
    value: str
    channel_id: str

    def seal(self, key: bytes) -> str:
        payload = {"r": self.run_id, "o": self.option, "v": self.value, "ch": self.channel_id}
        return seal(json.dumps(payload, separators=(",", ":")), key, label=_PLAN_LABEL)

    @classmethod
    def unseal(cls, raw: str, key: bytes) -> PlanChoice:
        """The choice this installation sealed; ButtonRefused when the seal does not match,
        ValueError when a sealed value is not a plan choice."""
        payload = json.loads(unseal(raw, key, label=_PLAN_LABEL))
        if not isinstance(payload, dict) or set(payload) != {"r", "o", "v", "ch"}:
            raise ValueError("a plan choice names a run, an option, a value and a channel")
        run_id, option, value, channel = (payload[k] for k in ("r", "o", "v", "ch"))
        if not all(isinstance(v, str) for v in (run_id, option, value, channel)):
            raise ValueError("plan choice fields must be strings")
        known = next((o for o in PLAN_OPTIONS if o == option), None)
        if known is None or not _RUN_ID.fullmatch(run_id) or not _PLAN_VALUE.fullmatch(value):
            raise ValueError("a plan choice names an unknown option, run or value")
        if not CHANNEL_ID_RE.fullmatch(channel):
            raise ValueError("a plan choice names a malformed channel")
        return cls(run_id, known, value, channel)


def click_origin(body: Mapping[str, Any]) -> str:
    """The channel Slack says the click happened in: `channel.id`, which clicks on ephemeral
    messages carry too, else `container.channel_id`; empty when the payload names neither."""
    channel = body.get("channel")
    named = channel.get("id") if isinstance(channel, Mapping) else None
    if isinstance(named, str) and named:
        return named
    container = body.get("container")
    held = container.get("channel_id") if isinstance(container, Mapping) else None
    return held if isinstance(held, str) else ""


def check_origin(claimed_channel: str, origin: str) -> None:
    """A sealed value is only good in the channel it was made for."""
    if not origin or claimed_channel != origin:
        raise ButtonRefused(
            OTHER_CHANNEL,
            f"a button made for channel {claimed_channel or '?'} was clicked in {origin[:40]!r}",
        )


def _mac(encoded: str, key: bytes, label: bytes) -> str:
    if not isinstance(key, bytes) or not key:
        raise ValueError("no key to sign button values with (pass the approval secret)")
    digest = hmac.new(key, label + encoded.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:SIGNATURE_BYTES]).rstrip(b"=").decode("ascii")
