"""Block Kit primitives: escaping, truncation, limits and the compact button values.

Pure functions from plain values to the dicts Slack expects; no I/O. Every string that comes
from the ngrok API or from a user goes through `escape()` before it reaches a mrkdwn or
plain_text object, and is truncated *after* escaping so a limit is never broken by the
entities and an entity is never cut in half. Renderers live in `bot.views*`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from bot.ngrok.models import ACTIONS, SESSION_ID_RE
from bot.slack.buttons import check_origin, click_origin, seal, unseal
from bot.slack.ids import CHANNEL_ID_RE, GROUP_ID_RE, THREAD_TS_RE, USER_ID_RE

# Limits from Slack's Block Kit reference (see shared/reference/slack-platform.md §4).
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_BUTTON_URL = 3000
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_SELECT_OPTIONS = 100
MAX_PLACEHOLDER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_BLOCK_ID = 255
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300
MAX_CONFIRM_BUTTON = 30
# Slack rejects a message whose block texts add up to about 13.2k characters
# (`msg_blocks_too_long`, undocumented); stay well below it.
MAX_MESSAGE_TEXT = 12_000
MAX_FALLBACK_TEXT = 300

ELLIPSIS = "…"
# A backtick would end a code span early; U+02CB looks alike and is inert.
_BACKTICK_STANDIN = "\u02cb"

BUTTON_OPS = ("details", "page", *ACTIONS)


# --- escaping and truncation ---------------------------------------------------------------


def escape(text: str) -> str:
    """Slack's three control characters, `&` first; nothing else (other entities show raw)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate_escaped(escaped: str, limit: int, ellipsis: str = ELLIPSIS) -> str:
    """Cuts already-escaped text to `limit` characters (ellipsis included) without
    splitting an `&amp;`/`&lt;`/`&gt;` entity."""
    if len(escaped) <= limit:
        return escaped
    keep = max(limit - len(ellipsis), 0)
    cut = _cut_before_entity(escaped, keep)
    return escaped[:cut] + ellipsis if limit >= len(ellipsis) else escaped[:cut]


def _cut_before_entity(escaped: str, cut: int) -> int:
    """Moves a cut position back to the start of an entity it would split. In escaped text
    every `&` starts an entity, so the cut splits one when its `;` lies at or after it."""
    amp = escaped.rfind("&", max(0, cut - 4), cut)
    if amp != -1 and escaped.find(";", amp) >= cut:
        return amp
    return cut


def clip(text: str, limit: int) -> str:
    """Escapes untrusted text, then truncates it to `limit` escaped characters."""
    return truncate_escaped(escape(text), limit)


def one_line(text: str) -> str:
    """Collapses newlines and runs of whitespace, for list rows and code spans."""
    return " ".join(text.split())


def neutralise_backticks(text: str) -> str:
    return text.replace("`", _BACKTICK_STANDIN)


def code_span(text: str, limit: int = 200) -> str:
    """Untrusted text as one inline code span; `limit` counts the escaped content."""
    content = clip(neutralise_backticks(one_line(text)), limit) or "-"
    return f"`{content}`"


def code_block(escaped: str) -> str:
    """Wraps already-escaped, backtick-free text in a code block."""
    return f"```\n{escaped}\n```"


def split_escaped(escaped: str, size: int) -> list[str]:
    """Splits escaped text into chunks of at most `size`, preferring line breaks and never
    splitting an entity, so long metadata can spread over several sections."""
    chunks: list[str] = []
    rest = escaped
    while len(rest) > size:
        cut = rest.rfind("\n", size // 2, size + 1)
        if cut == -1:
            cut = _cut_before_entity(rest, size)
        chunks.append(rest[:cut])
        rest = rest[cut:].removeprefix("\n")
    if rest or not chunks:
        chunks.append(rest)
    return chunks


def user_mention(user_id: str | None) -> str:
    """`<@U123>` for a well-formed Slack user id; anything else is shown escaped, inert."""
    if user_id and USER_ID_RE.fullmatch(user_id):
        return f"<@{user_id}>"
    return clip(user_id or "someone", 40)


def member_mention(member_id: str) -> str | None:
    """A mention for a configured user (`<@U…>`) or user group (`<!subteam^S…>`), so a
    request pings the people who can approve it; None for anything else (such as "*")."""
    if USER_ID_RE.fullmatch(member_id):
        return f"<@{member_id}>"
    if GROUP_ID_RE.fullmatch(member_id):
        return f"<!subteam^{member_id}>"
    return None


def parse_user_ref(text: str) -> str | None:
    """`<@U123>` or `<@U123|name>` to `U123`; None when the text is not a user reference."""
    match = re.fullmatch(r"<@([UW][A-Z0-9]{2,30})(?:\|[^>]*)?>", text.strip())
    return match.group(1) if match else None


# --- times ---------------------------------------------------------------------------------


def format_duration(delta: timedelta | None) -> str:
    """Two largest units, e.g. `3d 4h`, `4h 12m`, `12m`, `45s`; `unknown` without a value."""
    if delta is None:
        return "unknown"
    seconds = max(int(delta.total_seconds()), 0)
    days, rem = divmod(seconds, 86_400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def format_elapsed(seconds: float) -> str:
    """How long an action took: `0.4 s`, `12 s`, `3m 5s`."""
    if seconds < 10:
        return f"{max(seconds, 0):.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    return format_duration(timedelta(seconds=seconds))


def date_token(when: datetime) -> str:
    """A Slack date token that each reader sees in their own time zone, UTC as fallback."""
    utc = when.astimezone(UTC)
    fallback = utc.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(utc.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


# --- text objects and blocks ---------------------------------------------------------------


def mrkdwn(text: str) -> dict[str, Any]:
    """mrkdwn with `verbatim: true`, so Slack does not auto-link or parse names in data."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def plain(text: str, limit: int) -> dict[str, Any]:
    """plain_text from untrusted text: escaped (harmless there) and truncated."""
    return {"type": "plain_text", "text": clip(text, limit) or "-", "emoji": True}


def section(
    text: str,
    *,
    accessory: dict[str, Any] | None = None,
    block_id: str | None = None,
    fields: Sequence[str] = (),
) -> dict[str, Any]:
    """A section; `text` and `fields` must already be escaped and within their limits."""
    if len(text) > MAX_SECTION_TEXT or any(len(f) > MAX_FIELD_TEXT for f in fields):
        raise ValueError("section text over Slack's limit; truncate before building")
    block: dict[str, Any] = {"type": "section", "text": mrkdwn(text)}
    if fields:
        block["fields"] = [mrkdwn(f) for f in fields[:MAX_FIELDS]]
    if accessory is not None:
        block["accessory"] = accessory
    if block_id:
        block["block_id"] = block_id[:MAX_BLOCK_ID]
    return block


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": plain(text, MAX_HEADER_TEXT)}


def context(*texts: str) -> dict[str, Any]:
    """A context line; each text is escaped mrkdwn already."""
    elements = [mrkdwn(truncate_escaped(t, MAX_SECTION_TEXT)) for t in texts if t]
    return {"type": "context", "elements": elements[:MAX_CONTEXT_ELEMENTS] or [mrkdwn("-")]}


def divider() -> dict[str, Any]:
    return {"type": "divider"}


def actions(elements: Sequence[dict[str, Any]], block_id: str | None = None) -> dict[str, Any]:
    """An actions block. Slack wants action ids unique within a block, so callers never put
    two elements with the same id into one."""
    ids = [e["action_id"] for e in elements]
    if len(ids) != len(set(ids)):
        raise ValueError(f"duplicate action_id in one actions block: {ids}")
    block: dict[str, Any] = {"type": "actions", "elements": list(elements)}
    if block_id:
        block["block_id"] = block_id[:MAX_BLOCK_ID]
    return block


def confirm_dialog(
    title: str, text: str, confirm: str, deny: str = "Cancel", *, danger: bool = False
) -> dict[str, Any]:
    """A client-side "are you sure"; guards misclicks only, never authorization."""
    dialog: dict[str, Any] = {
        "title": plain(title, MAX_CONFIRM_TITLE),
        "text": {"type": "mrkdwn", "text": truncate_escaped(text, MAX_CONFIRM_TEXT)},
        "confirm": plain(confirm, MAX_CONFIRM_BUTTON),
        "deny": plain(deny, MAX_CONFIRM_BUTTON),
    }
    if danger:
        dialog["style"] = "danger"
    return dialog


def button(
    label: str,
    action_id: str,
    value: str,
    *,
    style: Literal["primary", "danger"] | None = None,
    confirm: dict[str, Any] | None = None,
    url: str | None = None,
) -> dict[str, Any]:
    """A button; with `url` Slack opens that page, and still sends the app the click."""
    if len(value) > MAX_BUTTON_VALUE:
        raise ValueError("button value over 2000 characters")
    element: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": plain(label, MAX_BUTTON_TEXT),
        "value": value,
    }
    if url is not None:
        if (
            not url.startswith("https://")
            or len(url) > MAX_BUTTON_URL
            or any(c in url for c in ' <>|"')
        ):
            raise ValueError("a button url must be an https URL of at most 3000 characters")
        element["url"] = url
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def overflow(action_id: str, options: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """An overflow menu; the click arrives with `selected_option.value` instead of `value`
    (read it with `value_of_action`)."""
    if not 1 <= len(options) <= 5:
        raise ValueError("an overflow menu holds 1 to 5 options")
    return {"type": "overflow", "action_id": action_id, "options": _options(options)}


def _options(options: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Menu options as Slack wants them; a value is 1 to 150 characters."""
    rendered = []
    for label, value in options:
        if not 1 <= len(value) <= MAX_OPTION_VALUE:
            raise ValueError("a menu option's value must be 1 to 150 characters")
        rendered.append({"text": plain(label, MAX_OPTION_TEXT), "value": value})
    return rendered


def static_select(
    action_id: str,
    placeholder: str,
    options: Sequence[tuple[str, str]],
    *,
    initial: int | None = None,
) -> dict[str, Any]:
    """A select menu of (label, value) options; `initial` is the index of the option shown
    as chosen (Slack wants it to equal one of the options). The click arrives with
    `selected_option.value` (read it with `value_of_action`)."""
    if not 1 <= len(options) <= MAX_SELECT_OPTIONS:
        raise ValueError("a select menu holds 1 to 100 options")
    rendered = _options(options)
    element: dict[str, Any] = {
        "type": "static_select",
        "action_id": action_id,
        "placeholder": plain(placeholder, MAX_PLACEHOLDER_TEXT),
        "options": rendered,
    }
    if initial is not None:
        element["initial_option"] = rendered[initial]
    return element


def message(fallback: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """The payload for respond()/chat.postMessage. `fallback` is raw text (notifications and
    screen readers show it); it is escaped here, so callers never pass mrkdwn."""
    if len(blocks) > MAX_BLOCKS:
        raise ValueError(f"{len(blocks)} blocks; Slack allows {MAX_BLOCKS}")
    return {"text": clip(fallback, MAX_FALLBACK_TEXT), "blocks": blocks}


def iter_texts(node: Any) -> Iterator[str]:
    """Every `text` string inside a block tree (text objects, fields, confirm dialogs)."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from iter_texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from iter_texts(item)


def text_length(blocks: Iterable[Mapping[str, Any]]) -> int:
    """The characters Slack counts against `MAX_MESSAGE_TEXT`."""
    return sum(len(t) for b in blocks for t in iter_texts(b))


# --- button values -------------------------------------------------------------------------


@dataclass(frozen=True)
class ButtonContext:
    """Where a conversation happens, carried in button values so replies stay in the thread
    (clicks on ephemerals do not say which thread they came from)."""

    channel_id: str
    thread_ts: str | None = None
    key: bytes = field(default=b"", repr=False)  # seals the values (bot.slack.buttons)


@dataclass(frozen=True)
class ButtonValue:
    """What a Details / Request / Page button carries; `query` and `cursor` only for paging."""

    op: str
    session_id: str = ""
    channel_id: str = ""
    thread_ts: str = ""
    query: str = ""
    cursor: str = ""


_KEYS = {"op": "op", "session_id": "id", "channel_id": "ch", "thread_ts": "th"}
_KEYS.update({"query": "q", "cursor": "cur"})


def encode_button_value(value: ButtonValue, limit: int = MAX_BUTTON_VALUE, *, key: bytes) -> str:
    """Compact JSON with empty fields left out, sealed with `key`, e.g.
    `{"op":"stop","id":"ts_…","ch":"C1"}.<mac>`. Raises ValueError when the result would not
    fit `limit` (150 for an overflow option)."""
    _check_value(value)
    payload = {short: getattr(value, name) for name, short in _KEYS.items() if getattr(value, name)}
    encoded = seal(json.dumps(payload, separators=(",", ":"), ensure_ascii=False), key)
    if len(encoded) > limit:
        raise ValueError(f"button value is {len(encoded)} characters; the limit is {limit}")
    return encoded


def decode_button_value(raw: str, *, key: bytes) -> ButtonValue:
    """The inverse of `encode_button_value`; ValueError on anything malformed or tampered
    (ButtonRefused, a ValueError, when the seal does not match)."""
    if not isinstance(raw, str) or len(raw) > MAX_BUTTON_VALUE:
        raise ValueError("button value is not a string of at most 2000 characters")
    raw = unseal(raw, key)
    try:
        payload = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError("button value is not JSON") from exc
    if not isinstance(payload, dict):
        raise ValueError("button value is not a JSON object")
    names = {short: name for name, short in _KEYS.items()}
    unknown = set(payload) - set(names)
    if unknown:
        raise ValueError(f"button value has unknown keys: {sorted(unknown)}")
    if not all(isinstance(v, str) for v in payload.values()):
        raise ValueError("button value fields must be strings")
    value = ButtonValue(
        **{names[k]: v for k, v in payload.items() if k != "op"}, op=payload.get("op", "")
    )
    _check_value(value)
    return value


def _check_value(value: ButtonValue) -> None:
    if value.op not in BUTTON_OPS:
        raise ValueError(f"unknown button op {value.op!r}")
    if value.op == "page":
        if value.session_id:
            raise ValueError("a page button carries no session id")
    elif not SESSION_ID_RE.fullmatch(value.session_id):
        raise ValueError("button value has no valid session id")
    if value.op != "page" and (value.query or value.cursor):
        raise ValueError("only page buttons carry a query or cursor")
    if value.channel_id and not CHANNEL_ID_RE.fullmatch(value.channel_id):
        raise ValueError("button value has a malformed channel id")
    if value.thread_ts and not THREAD_TS_RE.fullmatch(value.thread_ts):
        raise ValueError("button value has a malformed thread ts")


def button_value_for(
    op: str, session_id: str, ctx: ButtonContext, limit: int = MAX_BUTTON_VALUE
) -> str:
    """The value for a Details or Request control on one session."""
    value = ButtonValue(op, session_id, ctx.channel_id, ctx.thread_ts or "")
    return encode_button_value(value, limit, key=ctx.key)


def read_session_click(body: Mapping[str, Any], raw: str, *, key: bytes) -> ButtonValue:
    """The value of a session-button click, if this installation sealed it and Slack's signed
    payload says it was clicked in the channel the value names; else ButtonRefused (or
    ValueError for a sealed but malformed value) whose sentence goes to the clicker."""
    value = decode_button_value(raw, key=key)
    check_origin(value.channel_id, click_origin(body))
    return value


def value_of_action(action: Mapping[str, Any]) -> str:
    """The value of a clicked element from a block_actions payload: a button's `value` or an
    overflow's `selected_option.value`. Empty when neither is present."""
    value = action.get("value")
    if isinstance(value, str):
        return value
    selected = action.get("selected_option")
    chosen = selected.get("value") if isinstance(selected, Mapping) else None
    if isinstance(chosen, str):
        return chosen
    return ""
