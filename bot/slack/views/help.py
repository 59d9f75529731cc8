"""`help`: the commands this user may run here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.slack import blocks as bk


def render_help(lines: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """`lines` from `commands.grammar.help_lines`: (usage, what it does with an example)."""
    blocks = [
        bk.header("ngrok-ops commands"),
        bk.section(
            "Type `/ngrok &lt;command&gt;` in a channel, or mention the bot with the command in a "
            "thread (slash commands do not work in threads)."
        ),
    ]
    for usage, what in lines[: bk.MAX_BLOCKS - 2]:
        blocks.append(bk.section(f"{bk.code_span(usage, 300)}\n{bk.clip(what, 1500)}"))
    return bk.message("ngrok-ops commands: " + ", ".join(u.split()[0] for u, _ in lines), blocks)
