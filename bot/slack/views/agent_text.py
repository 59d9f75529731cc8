"""How one agent and one action are named in every message: the words, defined once."""

from __future__ import annotations

from collections.abc import Sequence

from bot.ngrok.hosts import DEFAULT_HOST_KEYS, host_from_metadata
from bot.ngrok.models import Action, TunnelSession
from bot.slack import blocks as bk

OP_LABEL: dict[Action, str] = {"restart": "Restart", "update": "Update", "stop": "Stop"}
OP_EFFECT: dict[Action, str] = {
    "restart": "The agent restarts and comes back with a *new* session id; this id stops working.",
    "stop": "The agent exits and does not come back unless a supervisor (systemd, a Windows "
    "service) starts it again.",
    "update": "The agent installs the latest minor version, which needs a restart at least 10 s "
    "later; the bot does that restart for you, and the agent comes back with a new session id.",
}
FIELD_LIMIT = 60  # region, OS, version, IP, transport: short values, cut if garbled


def runs_newest(session: TunnelSession, newest: str | None) -> bool:
    """The agent already runs the newest agent version seen in the account (None: unknown)."""
    return bool(newest) and not session.is_ssh and session.agent_version == newest


def nothing_to_update_sentence(name: str, version: str) -> str:
    """`update <id>` on an agent already on the newest version (plain text; `name` is the
    id or host as the user typed it, escaped by the renderer)."""
    return f"{name} already runs {version}, the newest version in this account; nothing to update."


def session_facts(session: TunnelSession) -> str:
    """`us · linux · agent 3.22.1 · 10.0.0.1`, escaped; `?` for what the API left out."""
    parts = [
        bk.clip(session.region or "?", FIELD_LIMIT),
        bk.clip(session.os or "?", FIELD_LIMIT),
        "agent " + bk.clip(session.agent_version or "?", FIELD_LIMIT),
        bk.clip(session.ip or "?", FIELD_LIMIT),
    ]
    if session.is_ssh:
        parts.append("ssh")
    return " · ".join(parts)


def session_summary(session: TunnelSession, metadata_limit: int = 200) -> str:
    """Id, facts and one line of metadata, for prompts and records."""
    text = f"{bk.code_span(session.id, 60)}  {session_facts(session)}"
    if session.metadata:
        text += f"\n{bk.code_span(session.metadata, metadata_limit)}"
    return text


# --- the list ------------------------------------------------------------------------------


def agent_name(metadata: str, keys: Sequence[str] = DEFAULT_HOST_KEYS) -> str | None:
    """The host name an agent's metadata gives, raw (callers escape); None when it gives
    none. One reading of host names for every message: bot.ngrok.hosts."""
    return host_from_metadata(metadata, keys)


# --- after the POST: a 204 is only ngrok's acknowledgement ----------------------------------


def waiting_words(op: Action, took: str = "") -> str:
    """What a record says between ngrok's 204 and the proof that the action took effect
    (`took`: " in 0.4 s", already escaped, or empty)."""
    return {
        "restart": f"ngrok accepted it{took}; waiting for the agent to come back under a new "
        "session id…",
        "update": "updated and restarted; waiting for the agent to come back on the new version…",
        "stop": f"ngrok accepted it{took}; checking that the session has ended…",
    }[op]


def back_words(op: Action, old: TunnelSession, successor: TunnelSession | None) -> str:
    """How a finished action ended, as seen on a read: the successor's id and version (an
    update also names the version it replaced), or the stopped session gone."""
    if op == "stop":
        return "the session has ended; the agent does not come back on its own."
    if successor is None:
        return "the agent comes back with a new session id."
    version = bk.clip(successor.agent_version or "?", FIELD_LIMIT)
    was = ""
    if op == "update":
        was = f" (was {bk.clip(old.agent_version or '?', FIELD_LIMIT)})"
    return f"back as {bk.code_span(successor.id, 60)} on {version}{was}."


def unconfirmed_words(op: Action, waited_seconds: float) -> str:
    """The action was acknowledged, but no read showed it took effect within the window."""
    waited = f"{waited_seconds:.0f} s"
    return {
        "restart": f"ngrok accepted the restart, but the agent has not come back within "
        f"{waited}; check the agent's host.",
        "update": f"updated and restarted, but the agent has not come back within {waited}; "
        "check the agent's host.",
        "stop": f"ngrok accepted the stop, but the session was still online {waited} later; "
        "check the agent's host.",
    }[op]


def not_updated_words(successor: TunnelSession) -> str:
    """An update whose agent came back on the version it had: it did not take."""
    version = bk.clip(successor.agent_version or "?", FIELD_LIMIT)
    return (
        f"back as {bk.code_span(successor.id, 60)} but still on {version}; the update did not take."
    )
