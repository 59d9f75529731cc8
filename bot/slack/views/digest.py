"""The daily digest: the last 24 h per watched account, and what the bot did, by whom."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.slack import blocks as bk
from bot.slack.ids import ACTION_UPDATE_OUTDATED

OUTAGES_SHOWN = 3


@dataclass(frozen=True)
class AccountDigest:
    name: str
    online: int
    change: int | None  # against 24 h ago; None when the watcher has no size that old
    disconnects: int
    reconnects: int
    longest: Sequence[tuple[str, float, bool]]  # (host, seconds, still down)
    outdated: int
    newest: str | None
    new_agents: int = 0


@dataclass(frozen=True)
class Digest:
    day: str  # e.g. "Tue 2 Dec 2026"
    accounts: Sequence[AccountDigest]
    actions: Sequence[tuple[str, str, int]]  # (user id, action, count)
    runs: Sequence[tuple[str, int]] = ()  # (user id, fleet runs)


def _signed(n: int | None) -> str:
    if n is None:
        return "change unknown"
    return f"{n:+d} since yesterday" if n else "unchanged since yesterday"


def _account(acc: AccountDigest) -> list[dict[str, Any]]:
    lines = [
        f"*{bk.clip(acc.name, 40)}*: {acc.online} agents online ({_signed(acc.change)}), "
        f"{acc.new_agents} new",
        f"{acc.disconnects} disconnects, {acc.reconnects} reconnects",
    ]
    if acc.longest:
        parts = [
            f"{bk.clip(host, 40)} {bk.format_duration(timedelta(seconds=s))}"
            + (" (still down)" if down else "")
            for host, s, down in acc.longest[:OUTAGES_SHOWN]
        ]
        lines.append("Longest outages: " + ", ".join(parts))
    newest = bk.clip(acc.newest or "?", 30)
    lines.append(f"{acc.outdated} agents older than {newest}")
    blocks: list[dict[str, Any]] = [bk.section("\n".join(lines))]
    if acc.outdated and acc.newest:
        value = f"{acc.name[:60]}|{acc.newest[:40]}"
        blocks.append(bk.actions([bk.button("Update outdated…", ACTION_UPDATE_OUTDATED, value)]))
    return blocks


def render_digest(digest: Digest) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [bk.header(f"ngrok fleet digest · {digest.day}")]
    for account in digest.accounts[:10]:
        blocks += _account(account)
    if not digest.accounts:
        blocks.append(bk.section("No account is watched (set `alerts.channel` in BOT_CONFIG)."))
    blocks.append(bk.divider())
    if digest.actions:
        rows = [
            f"{bk.user_mention(user)}: {n} {bk.clip(action, 20)}"
            for user, action, n in digest.actions[:15]
        ]
        blocks.append(bk.section("*Actions by the bot in the last 24 h*\n" + "\n".join(rows)))
    else:
        blocks.append(bk.section("*Actions by the bot in the last 24 h*\nnone"))
    if digest.runs:
        rows = [f"{bk.user_mention(user)}: {n} fleet run(s)" for user, n in digest.runs[:10]]
        blocks.append(bk.section("*Fleet runs*\n" + "\n".join(rows)))
    total = sum(a.online for a in digest.accounts)
    down = sum(a.disconnects for a in digest.accounts)
    fallback = f"ngrok fleet digest: {total} agents online, {down} disconnects in 24 h"
    return bk.message(fallback, blocks)
