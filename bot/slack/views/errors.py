"""The one-sentence error every refusal and failure is shown as."""

from __future__ import annotations

from typing import Any

from bot.slack import blocks as bk


def render_error(sentence: str, usage: str | None = None) -> dict[str, Any]:
    """One clear sentence (escaped: it may quote what the user typed) and the usage line."""
    text = f":warning: {bk.clip(sentence, 2000)}"
    blocks = [bk.section(text)]
    if usage:
        blocks.append(bk.context(f"Usage: {bk.code_span(usage, 1000)}"))
    return bk.message(sentence, blocks)


SORRY = "Something went wrong on the ngrok-ops side; it has been logged. Please try again."


def render_notice(sentence: str) -> dict[str, Any]:
    """A short confirmation (not an error): one escaped sentence."""
    return bk.message(sentence, [bk.section(f":white_check_mark: {bk.clip(sentence, 2000)}")])
