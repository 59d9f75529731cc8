"""Naming an agent: several agents share a host name (pick one), none has it (the nearest
names), and an old session id whose agent restarted under a new one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.ngrok.hosts import DEFAULT_HOST_KEYS, host_of
from bot.ngrok.models import Action, TunnelSession
from bot.slack import blocks as bk
from bot.slack.blocks import ButtonContext
from bot.slack.ids import ACTION_DETAILS, ACTION_REQUEST
from bot.slack.views.agent_text import OP_LABEL, session_facts

MAX_CHOICES = 20


def agent_title(session: TunnelSession, host_keys: Sequence[str] = DEFAULT_HOST_KEYS) -> str:
    """`*edge-12*  ts_…`: the host name first when the metadata names one, escaped."""
    host = host_of(session, host_keys)
    ident = bk.code_span(session.id, 60)
    return f"*{bk.clip(bk.one_line(host), 80)}*  {ident}" if host else ident


def render_host_choices(
    name: str,
    sessions: Sequence[TunnelSession],
    *,
    action: Action | None,
    context: ButtonContext,
    host_keys: Sequence[str] = DEFAULT_HOST_KEYS,
) -> dict[str, Any]:
    """Several online agents are named `name`: each with Details (and the asked action)."""
    intro = f"{len(sessions)} online agents are named {bk.code_span(name, 100)}; pick one" + (
        f" to {action}." if action else "."
    )
    blocks: list[dict[str, Any]] = [bk.section(intro)]
    for index, session in enumerate(sessions[:MAX_CHOICES]):
        buttons = [
            bk.button(
                "Details", ACTION_DETAILS, bk.button_value_for("details", session.id, context)
            )
        ]
        if action is not None:
            value = bk.button_value_for(action, session.id, context)
            buttons.append(bk.button(f"{OP_LABEL[action]}…", ACTION_REQUEST, value))
        text = f"{agent_title(session, host_keys)}  {session_facts(session)}"
        blocks.append(bk.section(text, block_id=f"choice{index}"))
        blocks.append(bk.actions(buttons, f"choice{index}_actions"))
    if len(sessions) > MAX_CHOICES:
        blocks.append(
            bk.context(f"{len(sessions) - MAX_CHOICES} more; use the session id to pick one.")
        )
    return bk.message(f"{len(sessions)} online agents are named {name}; pick one.", blocks)


def render_no_host(name: str, nearest: Sequence[str]) -> dict[str, Any]:
    """No online agent has that host name (or session id)."""
    sentence = f"No online agent is named {bk.code_span(name, 100)}"
    if nearest:
        sentence += "; the nearest names are " + ", ".join(bk.code_span(n, 100) for n in nearest)
    sentence += ". `sessions` lists the agents online."
    fallback = f"No online agent is named {name}."
    return bk.message(fallback, [bk.section(f":warning: {sentence}")])


def render_restarted_as(
    old_id: str,
    new_id: str,
    *,
    hops: int,
    online: bool,
    action: Action | None,
    context: ButtonContext,
) -> dict[str, Any]:
    """An old id: the agent restarted and is known under a new one (offered as buttons)."""
    again = f" ({hops} restarts since)" if hops > 1 else ""
    text = (
        f":arrows_counterclockwise: Agent {bk.code_span(old_id, 60)} restarted as "
        f"{bk.code_span(new_id, 60)}{again}."
    )
    if not online:
        text += " That session is not online now either; `sessions` lists the agents online."
        return bk.message(f"Agent {old_id} restarted as {new_id}.", [bk.section(text)])
    buttons = [
        bk.button("Details", ACTION_DETAILS, bk.button_value_for("details", new_id, context))
    ]
    if action is not None:
        value = bk.button_value_for(action, new_id, context)
        buttons.append(bk.button(f"{OP_LABEL[action]} {new_id[:12]}…", ACTION_REQUEST, value))
    blocks = [bk.section(text), bk.actions(buttons, "successor_actions")]
    return bk.message(f"Agent {old_id} restarted as {new_id}.", blocks)


def render_never_seen(session_id: str, last_event: str | None) -> dict[str, Any]:
    """An id that is not online and that the bot never saw restart."""
    ident = bk.code_span(session_id, 60)
    if last_event:
        text = (
            f":warning: Session {ident} is no longer online; the last thing recorded for it was "
            f"{bk.clip(last_event, 200)}, and no restart of it was seen. `sessions` lists the "
            "agents online."
        )
    else:
        text = (
            f":warning: Session {ident} is not online and this bot has never seen it: check the "
            "id (copy it from `sessions`), or the agent stopped before the bot looked."
        )
    return bk.message(f"Session {session_id} is not online.", [bk.section(text)])
