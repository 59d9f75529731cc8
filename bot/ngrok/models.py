"""Frozen dataclasses for what the ngrok API returns, parsed leniently at the boundary.

The API omits empty fields and may add new ones at any time, so every field is read with
`.get()`, a missing value and `""` mean the same, and unknown keys are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

Action = Literal["restart", "update", "stop"]
"""The three things the API can ask an agent to do; the one spelling of them (mypy holds it)."""
ACTIONS: tuple[Action, ...] = get_args(Action)
SESSION_ID_RE = re.compile(r"ts_[A-Za-z0-9]{20,40}")


def as_action(text: str) -> Action | None:
    """Narrows a string from outside (a token, a button, a config file) to an Action."""
    for action in ACTIONS:
        if text == action:
            return action
    return None


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 (`2025-09-22T18:34:27Z`) to an aware datetime; None when absent or garbled."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class Ref:
    """A reference to another API object: `{"id": ..., "uri": ...}`."""

    id: str = ""
    uri: str = ""

    @classmethod
    def from_api(cls, raw: Any) -> Ref:
        if not isinstance(raw, Mapping):
            return cls()
        return cls(id=_text(raw, "id"), uri=_text(raw, "uri"))


@dataclass(frozen=True)
class TunnelSession:
    """One connected agent (the dashboard calls it an Agent)."""

    id: str
    uri: str = ""
    agent_version: str = ""
    credential: Ref = Ref()
    ip: str = ""
    metadata: str = ""
    os: str = ""
    region: str = ""
    started_at: datetime | None = None
    transport: str = ""

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> TunnelSession:
        return cls(
            id=_text(raw, "id"),
            uri=_text(raw, "uri"),
            agent_version=_text(raw, "agent_version"),
            credential=Ref.from_api(raw.get("credential")),
            ip=_text(raw, "ip"),
            metadata=_text(raw, "metadata"),
            os=_text(raw, "os"),
            region=_text(raw, "region"),
            started_at=parse_time(raw.get("started_at")),
            transport=_text(raw, "transport"),
        )

    def to_api(self) -> dict[str, Any]:
        """The API's JSON shape again (empty fields left out), for state kept as plain JSON."""
        raw: dict[str, Any] = {
            "id": self.id,
            "uri": self.uri,
            "agent_version": self.agent_version,
            "credential": {"id": self.credential.id, "uri": self.credential.uri},
            "ip": self.ip,
            "metadata": self.metadata,
            "os": self.os,
            "region": self.region,
            "started_at": self.started_at.isoformat() if self.started_at else "",
            "transport": self.transport,
        }
        return {key: value for key, value in raw.items() if value}

    @property
    def is_windows(self) -> bool:
        """Windows agents cannot restart themselves (no `exec()`)."""
        return self.os.lower() == "windows"

    @property
    def is_ssh(self) -> bool:
        """SSH reverse-tunnel sessions can be stopped but not restarted or updated."""
        return self.transport == "ssh"

    def uptime(self, now: datetime | None = None) -> timedelta | None:
        """Time since the agent first connected, never negative; None when unknown."""
        if self.started_at is None:
            return None
        current = now or datetime.now(UTC)
        return max(current - self.started_at, timedelta(0))


@dataclass(frozen=True)
class Endpoint:
    """An agent endpoint (or, from the deprecated tunnels API, a tunnel) of a session."""

    id: str
    url: str = ""
    proto: str = ""
    upstream_url: str = ""
    type: str = ""
    name: str = ""
    metadata: str = ""
    tunnel_session: Ref = Ref()

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Endpoint:
        """Reads an endpoint or a tunnel: tunnels call the URL `public_url` and the upstream
        `forwards_to`."""
        return cls(
            id=_text(raw, "id"),
            url=_text(raw, "url") or _text(raw, "public_url"),
            proto=_text(raw, "proto"),
            upstream_url=_text(raw, "upstream_url") or _text(raw, "forwards_to"),
            type=_text(raw, "type"),
            name=_text(raw, "name"),
            metadata=_text(raw, "metadata"),
            tunnel_session=Ref.from_api(raw.get("tunnel_session")),
        )


@dataclass(frozen=True)
class SessionPage:
    """One page of `GET /tunnel_sessions`; `next_page_uri` is None on the last page."""

    sessions: tuple[TunnelSession, ...]
    next_page_uri: str | None = None


def unsupported_reason(action: Action, session: TunnelSession) -> str | None:
    """Why `action` cannot work on this agent, as one sentence; None when it can. A fact of
    the agents (Windows cannot re-exec itself, SSH sessions have no agent), not of policy."""
    if session.is_ssh and action == "restart":
        return (
            "Restart is not available: SSH reverse-tunnel sessions cannot be restarted; stop it "
            "and reconnect over SSH."
        )
    if session.is_ssh and action == "update":
        return "Update is not available: SSH reverse-tunnel sessions have no ngrok agent to update."
    if session.is_windows and action == "restart":
        return (
            "Restart is not available: Windows agents cannot restart themselves; stop it and let "
            "the service manager start it again."
        )
    return None


def supported_actions(session: TunnelSession) -> tuple[Action, ...]:
    return tuple(action for action in ACTIONS if unsupported_reason(action, session) is None)
