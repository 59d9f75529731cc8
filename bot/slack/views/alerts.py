"""What the watcher says: one grouped message per burst with host names first, follow-ups
in its thread, the top message edited to "recovered", notes in the thread of the bot's own
action, and the private list behind "List them". Names and metadata come from agents, so
everything is escaped (an agent's metadata can never ping a channel)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.slack import blocks as bk
from bot.slack.ids import ACTION_ALERT_AGENTS, ACTION_DETAILS
from bot.watch.model import Agent, Change

NAMES_SHOWN = 3
HOST_LIMIT = 60
LIST_ROWS = 40


@dataclass(frozen=True)
class AgentState:
    """One agent in the "List them" answer: as last seen, and its successor if it is back."""

    agent: Agent
    back_as: str | None = None


def names(agents: Sequence[Agent], shown: int = NAMES_SHOWN) -> str:
    """`edge-12, edge-19, … (+4)`, escaped."""
    hosts = [bk.clip(bk.one_line(a.host), HOST_LIMIT) for a in agents]
    text = ", ".join(hosts[:shown])
    if len(hosts) > shown:
        text += f", … (+{len(hosts) - shown})"
    return text


def where(agents: Sequence[Agent]) -> tuple[str, str]:
    """(` in eu`, ``) for one region, else (``, ` (eu 4, us 3)`)."""
    regions = Counter(a.region or "?" for a in agents)
    if len(regions) == 1:
        return f" in {bk.clip(next(iter(regions)), 30)}", ""
    parts = ", ".join(f"{bk.clip(r, 30)} {n}" for r, n in regions.most_common(4))
    more = ", …" if len(regions) > 4 else ""
    return "", f" ({parts}{more})"


def _count(n: int, one: str = "agent", many: str = "agents") -> str:
    return f"{n} {one if n == 1 else many}"


def _subject(agents: Sequence[Agent], verb_one: str, verb_many: str) -> str:
    """`7 agents in eu disconnected: edge-12, …` or `edge-12 (eu) disconnected`."""
    if len(agents) == 1:
        agent = agents[0]
        region = bk.clip(agent.region or "?", 30)
        return f"*{names(agents)}* ({region}) {verb_one}"
    inside, spread = where(agents)
    return f"*{_count(len(agents))}{inside} {verb_many}*{spread}: {names(agents)}"


def _list_button(alert_id: str) -> dict[str, Any]:
    return bk.button("List them", ACTION_ALERT_AGENTS, alert_id)


def _alert(fallback: str, text: str, note: str, alert_id: str | None) -> dict[str, Any]:
    blocks = [bk.section(bk.truncate_escaped(text, bk.MAX_SECTION_TEXT)), bk.context(note)]
    if alert_id:
        blocks.append(bk.actions([_list_button(alert_id)]))
    return bk.message(fallback, blocks)


def _plain(text: str) -> str:
    """Fallback text from escaped mrkdwn: the markers dropped (message() escapes again)."""
    text = re.sub(r"^:[a-z_]+: ", "", text)  # the leading emoji is for the eye, not the alert
    return text.replace("*", "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def render_disconnected(
    agents: Sequence[Agent], *, account: str, min_down: float, alert_id: str, fleet: int
) -> dict[str, Any]:
    """One message for every agent that went in one burst (the whole fleet included)."""
    if fleet and len(agents) >= fleet > 1:
        text = f":red_circle: *All {fleet} watched agents of `{bk.clip(account, 40)}` disconnected*"
        text += f": {names(agents)}"
    else:
        text = ":red_circle: " + _subject(agents, "disconnected", "disconnected")
    since = min(a.last_seen for a in agents)
    note = (
        f"Gone for at least {bk.format_duration(timedelta(seconds=min_down))} with no successor"
        f" · last seen {bk.date_token(datetime.fromtimestamp(since, UTC))}"
        f" · account {bk.code_span(account, 40)} · follow-ups in the thread"
    )
    return _alert(_plain(text), text, note, alert_id)


def render_recovered(
    agents: Sequence[Agent], *, account: str, outage_seconds: float, alert_id: str
) -> dict[str, Any]:
    """The top message, edited once every agent of the alert is back."""
    text = ":large_green_circle: Recovered: " + _subject(agents, "is back", "are back")
    note = (
        f"Outage {bk.format_duration(timedelta(seconds=outage_seconds))}"
        f" · account {bk.code_span(account, 40)} · details in the thread"
    )
    return _alert(_plain(text), text, note, alert_id)


def render_reconnected(changes: Sequence[Change], *, still_down: int) -> dict[str, Any]:
    """A follow-up in the alert's thread (or a message of its own if the alert is unknown)."""
    rows = []
    for change in changes[:10]:
        old = change.old
        moved = (
            f" as {bk.code_span(change.agent.id, 40)}" if old and old.id != change.agent.id else ""
        )
        gone = bk.format_duration(timedelta(seconds=change.seconds or 0))
        rows.append(f"• *{bk.clip(change.agent.host, HOST_LIMIT)}* is back{moved} after {gone}")
    if len(changes) > 10:
        rows.append(f"• … and {len(changes) - 10} more")
    agents = [c.agent for c in changes]
    head = ":white_check_mark: " + _subject(agents, "reconnected", "reconnected")
    tail = f"{_count(still_down)} of this alert still down." if still_down else "All back."
    text = head + "\n" + "\n".join(rows)
    return bk.message(_plain(head), [bk.section(bk.truncate_escaped(text, 3000)), bk.context(tail)])


def render_changes(kind: str, changes: Sequence[Change], *, account: str) -> dict[str, Any]:
    """New agents, version changes and flapping agents, each kind as one message."""
    agents = [c.agent for c in changes]
    if kind == "new":
        text = ":new: " + _subject(agents, "connected for the first time", "are new")
    elif kind == "flapping":
        count = max(c.count for c in changes)
        text = ":warning: " + _subject(agents, "is flapping", "are flapping")
        text += f" ({count} disconnects in the flapping window)"
    else:
        text = ":arrow_up: " + _subject(agents, "changed version", "changed version")
        moves = [
            f"{bk.clip(c.agent.host, HOST_LIMIT)}: {bk.clip(c.old.version if c.old else '?', 30)}"
            f" → {bk.clip(c.agent.version or '?', 30)}"
            for c in changes[:5]
        ]
        text += "\n" + "\n".join(moves)
    note = f"account {bk.code_span(account, 40)}"
    return _alert(_plain(text.split("\n")[0]), text, note, None)


def render_rate_limited(count: int) -> dict[str, Any]:
    text = (
        f"(Alerts in this channel are rate-limited; {_count(count, 'message', 'messages')} "
        "more went into this thread.)"
    )
    return bk.message(text, [bk.context(bk.escape(text))])


def render_api_problem(*, account: str, key_failed: bool, sentence: str) -> dict[str, Any]:
    what = "API key failed" if key_failed else "API is not answering"
    text = (
        f":rotating_light: *The ngrok {what} for account {bk.code_span(account, 40)}*: "
        f"{bk.clip(sentence, 500)}\nThe watcher cannot see the agents until it works again; "
        "no agent is reported as disconnected meanwhile."
    )
    return _alert(
        _plain(text.split("\n")[0]), text, "This message is edited when it recovers.", None
    )


def render_api_recovered(*, account: str, key_failed: bool, seconds: float) -> dict[str, Any]:
    what = "API key works" if key_failed else "API answers"
    down = bk.format_duration(timedelta(seconds=seconds))
    text = (
        f":large_green_circle: Recovered: the ngrok {what} again for account "
        f"{bk.code_span(account, 40)} (after {down})."
    )
    return _alert(_plain(text), text, "Watching again.", None)


def render_own_action(change: Change) -> dict[str, Any]:
    """In the thread of the bot's own action: the watcher saw it happen, no alert."""
    action = bk.clip(change.action.action if change.action else "action", 20)
    host = bk.clip(change.agent.host, HOST_LIMIT)
    if change.kind == "own_back":
        old = change.old.id if change.old else "?"
        took = bk.format_duration(timedelta(seconds=change.seconds or 0))
        text = (
            f":eyes: Watcher: *{host}* ({bk.code_span(old, 40)}) is back as "
            f"{bk.code_span(change.agent.id, 40)} {took} after the bot's {action}; not alerted."
        )
    else:
        text = (
            f":eyes: Watcher: *{host}* ({bk.code_span(change.agent.id, 40)}) left after the "
            f"bot's {action}; not alerted as an outage."
        )
    return bk.message(_plain(text), [bk.context(text)])


def render_alert_agents(
    title: str, rows: Sequence[AgentState], *, now: float, context: bk.ButtonContext
) -> dict[str, Any]:
    """ "List them": each agent of an alert as last seen; Details for those back online."""
    blocks: list[dict[str, Any]] = [bk.section(f"*{bk.clip(title, 200)}*")]
    for row in rows[:LIST_ROWS]:
        agent = row.agent
        ago = bk.format_duration(timedelta(seconds=max(now - agent.last_seen, 0)))
        facts = " · ".join(
            bk.clip(x or "?", 40) for x in (agent.region, agent.os, agent.version, agent.ip)
        )
        state = (
            f"back as {bk.code_span(row.back_as, 40)}"
            if row.back_as
            else f"gone, last seen {ago} ago"
        )
        text = (
            f"*{bk.clip(agent.host, HOST_LIMIT)}* {bk.code_span(agent.id, 40)}\n{facts} · {state}"
        )
        if agent.metadata:
            text += f"\n{bk.code_span(agent.metadata, 200)}"
        accessory = None
        if row.back_as:
            value = bk.button_value_for("details", row.back_as, context)
            accessory = bk.button("Details", ACTION_DETAILS, value)
        blocks.append(bk.section(text, accessory=accessory))
    if len(rows) > LIST_ROWS:
        blocks.append(bk.context(f"… and {len(rows) - LIST_ROWS} more"))
    return bk.message(title, blocks)
