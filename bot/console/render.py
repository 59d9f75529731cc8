"""Block Kit messages as plain terminal text, with buttons and menu options as numbered choices.

Pure functions, no I/O. Everything shown passes through `clean`, because agent metadata and
ngrok error texts are untrusted: an ESC byte in a host name must not reach the terminal.
Slack's own markup is translated for reading: `<@U1>` becomes `@U1`, `&lt;` becomes `<`, a
few status emoji codes become their symbols; code spans keep their backticks.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

WIDTH = 78
EMOJI = {
    ":white_check_mark:": "✅",
    ":x:": "❌",
    ":warning:": "⚠️",
    ":arrows_counterclockwise:": "🔄",
    ":hourglass_flowing_sand:": "⏳",
    ":no_entry:": "⛔",
    ":lock:": "🔒",
    ":information_source:": "ℹ️",  # noqa: RUF001  (the symbol is meant)
}
_SLACK_TOKEN = re.compile(r"<([@#!][^<>|]*|[a-z][a-z0-9+.-]*:[^<>|\s]*)(?:\|([^<>]*))?>")
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F)}


@dataclass(frozen=True)
class Choice:
    """One clickable thing: `number` as the user types it ("3", or "2.1" for a menu option),
    the element as Slack would send it back in `actions[0]`, and its visible label."""

    number: str
    label: str
    action: dict[str, Any]
    confirm: str = ""


def clean(text: str) -> str:
    """Drops control characters (keeping newlines) and bidirectional overrides, so text
    from the ngrok API cannot move the cursor, recolour or reorder the terminal."""
    kept = []
    for ch in text.replace("\t", " ").replace("\r\n", "\n"):
        if ch == "\n" or (unicodedata.category(ch) != "Cc" and ch not in _BIDI):
            kept.append(ch)
    return "".join(kept)


def _slack_token(match: re.Match[str]) -> str:
    target, label = match.group(1), match.group(2)
    if target.startswith("@"):
        return "@" + (label or target[1:])
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("!date"):
        return label or target
    if target.startswith("!"):
        return "@" + (label or target[1:].split("^")[0])
    return f"{label} ({target})" if label else target


def readable(text: str) -> str:
    """mrkdwn or plain_text as the reader should see it."""
    text = _SLACK_TOKEN.sub(_slack_token, text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    for code, symbol in EMOJI.items():
        text = text.replace(code, symbol)
    return clean(text)


def _text(obj: Any) -> str:
    """The text of a text object (or of a bare string)."""
    if isinstance(obj, Mapping):
        return readable(str(obj.get("text", "")))
    return readable(str(obj or ""))


def _indent(text: str, prefix: str = "  ") -> list[str]:
    return [prefix + line if line else "" for line in text.split("\n")]


def _rich_text(node: Any) -> Iterator[str]:
    """The visible strings inside a rich_text tree (table cells may hold them)."""
    if isinstance(node, Mapping):
        if node.get("type") in ("text", "link") and "text" in node:
            yield str(node["text"])
        elif node.get("type") == "user":
            yield "@" + str(node.get("user_id", ""))
        for child in node.get("elements", ()):
            yield from _rich_text(child)
    elif isinstance(node, list):
        for child in node:
            yield from _rich_text(child)


def _cell(cell: Any) -> str:
    if isinstance(cell, Mapping) and cell.get("type") == "raw_text":
        return clean(str(cell.get("text", ""))).replace("\n", " ")
    return readable("".join(_rich_text(cell))).replace("\n", " ")


def _table(block: Mapping[str, Any]) -> list[str]:
    rows = [[_cell(c) for c in row] for row in block.get("rows", ())]
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(map(len, rows)))]
    lines = ["  " + "  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    if len(lines) > 1:
        lines.insert(1, "  " + "  ".join("-" * w for w in widths))
    return lines


class _Numbering:
    """Hands out choice numbers in reading order, across the messages of one output."""

    def __init__(self, start: int) -> None:
        self.next = start
        self.choices: list[Choice] = []

    def element(self, element: Mapping[str, Any], block_id: str) -> str:
        kind = element.get("type")
        if kind == "button" and element.get("url"):  # a link: nothing for the bot to do
            return f"{_text(element.get('text'))}: {clean(str(element['url']))}"
        number = str(self.next)
        self.next += 1
        if kind == "button":
            label = _text(element.get("text"))
            action = {
                "type": "button",
                "action_id": element.get("action_id", ""),
                "block_id": block_id,
                "text": element.get("text"),
                "value": element.get("value", ""),
            }
            confirm = _text((element.get("confirm") or {}).get("text"))
            self.choices.append(Choice(number, label, action, confirm))
            return f"[{number}] {label}"
        if kind in ("overflow", "static_select"):
            parts = []
            chosen = element.get("initial_option")
            for index, option in enumerate(element.get("options", ()), start=1):
                sub = f"{number}.{index}"
                label = _text(option.get("text")) + (" (chosen)" if option == chosen else "")
                action = {
                    "type": kind,
                    "action_id": element.get("action_id", ""),
                    "block_id": block_id,
                    "selected_option": dict(option),
                }
                self.choices.append(Choice(sub, label, action))
                parts.append(f"[{sub}] {label}")
            if kind == "static_select":  # a long menu: one choice a line, like a list
                title = _text(element.get("placeholder")) or "Pick one"
                return "\n  ".join([f"{title}:", *parts])
            return f"⋯ {'  '.join(parts)}"
        return f"({clean(str(kind))} not shown)"


def _block(block: Mapping[str, Any], numbering: _Numbering, index: int) -> list[str]:
    kind = block.get("type")
    block_id = str(block.get("block_id") or f"b{index}")
    if kind == "header":
        title = _text(block.get("text"))
        return [title, "=" * min(len(title), WIDTH)]
    if kind == "section":
        lines = _indent(_text(block.get("text")), "") if block.get("text") else []
        for field in block.get("fields", ()):
            lines.append("  • " + " ".join(_text(field).split("\n")))
        accessory = block.get("accessory")
        if accessory is not None:
            lines.append("  " + numbering.element(accessory, block_id))
        return lines
    if kind == "context":
        texts = [_text(e) if e.get("type") != "image" else "" for e in block.get("elements", ())]
        return _indent(" · ".join(t for t in texts if t), "  ")
    if kind == "divider":
        return ["-" * 40]
    if kind == "actions":
        menus = any(e.get("type") == "static_select" for e in block["elements"])
        joint = "\n  " if menus else "   "  # a menu lists one choice a line: one menu a block
        return ("  " + joint.join(numbering.element(e, block_id) for e in block["elements"])).split(
            "\n"
        )
    if kind == "table":
        return _table(block)
    if kind == "rich_text":
        return _indent(readable("".join(_rich_text(block))), "")
    return [f"({clean(str(kind))} block not shown)"]


def render_message(
    message: Mapping[str, Any], label: str, *, first_choice: int = 1
) -> tuple[list[str], list[Choice]]:
    """The lines to print for one message (a label line first) and its numbered choices."""
    numbering = _Numbering(first_choice)
    lines = [f"── {clean(label)} " + "─" * max(3, WIDTH - 4 - len(label))]
    blocks: Sequence[Mapping[str, Any]] = message.get("blocks") or ()
    if not blocks:
        lines += _indent(_text(message.get("text", "")), "")
    for index, block in enumerate(blocks):
        lines += _block(block, numbering, index)
    return lines, numbering.choices
