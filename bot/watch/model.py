"""What the watcher remembers between scans, as frozen records with `from_data`/`to_data`
(the store keeps plain JSON), and the changes one scan finds.

An agent is known by its session id, but an agent that restarts comes back under a new id;
`identity` (credential, IP, metadata) is what says "the same agent back".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from bot.ngrok.hosts import DEFAULT_HOST_KEYS, host_from_metadata
from bot.ngrok.models import TunnelSession

STATE_PREFIX = "watch:"  # the store key of an account's WatchState: watch:<account>
METADATA_KEPT = 300  # the watcher keeps this much metadata per agent (names come from it)
HOST_KEYS = (*DEFAULT_HOST_KEYS, "node", "instance")

ChangeKind = Literal[
    "disconnected", "reconnected", "flapping", "new", "version", "own_left", "own_back"
]


def host_name(metadata: str, ip: str, session_id: str) -> str:
    """A short name people know the agent by: the metadata's host (JSON `host`, `hostname`,
    ...), else its first word, else the IP, else the id. Raw text: escape it to show it."""
    named = host_from_metadata(metadata, HOST_KEYS)
    if named:
        return named[:60]
    text = metadata.strip()
    if text and not text.startswith("{"):
        return text.split()[0][:60]
    return ip or session_id


@dataclass(frozen=True)
class Agent:
    """One watched agent as last seen."""

    id: str
    host: str
    credential: str = ""
    ip: str = ""
    metadata: str = ""
    version: str = ""
    region: str = ""
    os: str = ""
    first_seen: float = 0.0
    last_seen: float = 0.0

    @classmethod
    def from_session(cls, session: TunnelSession, *, now: float, first_seen: float) -> Agent:
        return cls(
            id=session.id,
            host=host_name(session.metadata, session.ip, session.id),
            credential=session.credential.id,
            ip=session.ip,
            metadata=session.metadata[:METADATA_KEPT],
            version=session.agent_version,
            region=session.region,
            os=session.os,
            first_seen=first_seen,
            last_seen=now,
        )

    @property
    def identity(self) -> str:
        """Credential, IP and metadata: what a restarted agent keeps under its new id."""
        return json.dumps([self.credential, self.ip, self.metadata])

    @classmethod
    def from_data(cls, raw: Mapping[str, Any]) -> Agent:
        return cls(
            id=str(raw["id"]),
            host=str(raw.get("host") or raw["id"]),
            credential=str(raw.get("credential", "")),
            ip=str(raw.get("ip", "")),
            metadata=str(raw.get("metadata", "")),
            version=str(raw.get("version", "")),
            region=str(raw.get("region", "")),
            os=str(raw.get("os", "")),
            first_seen=float(raw.get("first_seen", 0.0)),
            last_seen=float(raw.get("last_seen", 0.0)),
        )

    def to_data(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "credential": self.credential,
            "ip": self.ip,
            "metadata": self.metadata,
            "version": self.version,
            "region": self.region,
            "os": self.os,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }


@dataclass(frozen=True)
class Gone:
    """An agent missing from the scans since `agent.last_seen`; `declared` once it stayed
    gone for min_down (then `alert` names the alert that said so)."""

    agent: Agent
    declared: bool = False
    alert: str | None = None

    @classmethod
    def from_data(cls, raw: Mapping[str, Any]) -> Gone:
        return cls(Agent.from_data(raw["agent"]), bool(raw.get("declared")), raw.get("alert"))

    def to_data(self) -> dict[str, Any]:
        return {"agent": self.agent.to_data(), "declared": self.declared, "alert": self.alert}


@dataclass(frozen=True)
class OwnAction:
    """An action the bot ran (an `action:<id>` record): its agents leave without an alert."""

    action_id: str
    action: str
    session_id: str
    where: Mapping[str, Any]
    started: float

    @classmethod
    def from_record(cls, raw: Mapping[str, Any]) -> OwnAction | None:
        session = raw.get("session")
        if not isinstance(session, Mapping) or not isinstance(raw.get("where"), Mapping):
            return None
        return cls(
            action_id=str(raw.get("id", "")),
            action=str(raw.get("action", "")),
            session_id=str(session.get("id", "")),
            where=dict(raw["where"]),
            started=float(raw.get("started", 0.0)),
        )


@dataclass(frozen=True)
class Departure:
    """An agent that left after the bot's own action; its successor is "back", not "new"."""

    agent: Agent
    action: OwnAction
    at: float

    @classmethod
    def from_data(cls, raw: Mapping[str, Any]) -> Departure:
        action = OwnAction.from_record(raw["action"])
        if action is None:
            raise ValueError("a departure without its action")
        return cls(Agent.from_data(raw["agent"]), action, float(raw["at"]))

    def to_data(self) -> dict[str, Any]:
        action = self.action
        return {
            "agent": self.agent.to_data(),
            "at": self.at,
            "action": {
                "id": action.action_id,
                "action": action.action,
                "session": {"id": action.session_id},
                "where": dict(action.where),
                "started": action.started,
            },
        }


@dataclass(frozen=True)
class Change:
    """One thing one scan found about one agent. `seconds`: how long it was gone;
    `old`: the agent before (previous id or version); `alert`: the outage's alert."""

    kind: ChangeKind
    agent: Agent
    at: float
    seconds: float | None = None
    old: Agent | None = None
    alert: str | None = None
    action: OwnAction | None = None
    count: int = 0


@dataclass(frozen=True)
class Event:
    """A past change kept for 24 h, for the Home tab and the digest."""

    kind: str
    at: float
    host: str
    id: str
    seconds: float | None = None

    @classmethod
    def from_data(cls, raw: Mapping[str, Any]) -> Event:
        seconds = raw.get("seconds")
        return cls(
            str(raw["kind"]),
            float(raw["at"]),
            str(raw.get("host", "")),
            str(raw.get("id", "")),
            float(seconds) if isinstance(seconds, int | float) else None,
        )

    def to_data(self) -> dict[str, Any]:
        return {"kind": self.kind, "at": self.at, "host": self.host, "id": self.id,
                "seconds": self.seconds}  # fmt: skip


@dataclass(frozen=True)
class ApiProblem:
    """The account's API key failed or the API was down since `since`."""

    kind: Literal["key", "down"]
    since: float
    sentence: str
    alert_ts: str | None = None


@dataclass(frozen=True)
class WatchState:
    """Everything the watcher knows about one account, kept under `watch:<account>`."""

    scanned_at: float | None = None
    agents: Mapping[str, Agent] = field(default_factory=dict)
    gone: Mapping[str, Gone] = field(default_factory=dict)
    departed: Mapping[str, Departure] = field(default_factory=dict)
    flaps: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    flap_alerted: Mapping[str, float] = field(default_factory=dict)
    history: tuple[Event, ...] = ()
    problem: ApiProblem | None = None
    interval: float = 0.0  # the interval the watcher actually uses (stretched for large fleets)
    stretched: bool = False
    pages: int = 0  # requests one scan costs
    sizes: tuple[tuple[float, int], ...] = ()  # (time, agents online), every 10 min for 25 h

    @classmethod
    def from_data(cls, raw: Mapping[str, Any]) -> WatchState:
        problem = raw.get("problem")
        return cls(
            scanned_at=raw.get("scanned_at"),
            agents={k: Agent.from_data(v) for k, v in (raw.get("agents") or {}).items()},
            gone={k: Gone.from_data(v) for k, v in (raw.get("gone") or {}).items()},
            departed={k: Departure.from_data(v) for k, v in (raw.get("departed") or {}).items()},
            flaps={k: tuple(v) for k, v in (raw.get("flaps") or {}).items()},
            flap_alerted=dict(raw.get("flap_alerted") or {}),
            history=tuple(Event.from_data(e) for e in raw.get("history") or ()),
            problem=ApiProblem(
                problem["kind"], problem["since"], problem["sentence"], problem.get("alert_ts")
            )
            if isinstance(problem, Mapping)
            else None,
            interval=float(raw.get("interval", 0.0)),
            stretched=bool(raw.get("stretched")),
            pages=int(raw.get("pages", 0)),
            sizes=tuple((float(t), int(n)) for t, n in raw.get("sizes") or ()),
        )

    def to_data(self) -> dict[str, Any]:
        problem = self.problem
        return {
            "scanned_at": self.scanned_at,
            "agents": {k: v.to_data() for k, v in self.agents.items()},
            "gone": {k: v.to_data() for k, v in self.gone.items()},
            "departed": {k: v.to_data() for k, v in self.departed.items()},
            "flaps": {k: list(v) for k, v in self.flaps.items()},
            "flap_alerted": dict(self.flap_alerted),
            "history": [e.to_data() for e in self.history],
            "problem": None
            if problem is None
            else {
                "kind": problem.kind,
                "since": problem.since,
                "sentence": problem.sentence,
                "alert_ts": problem.alert_ts,
            },
            "interval": self.interval,
            "stretched": self.stretched,
            "pages": self.pages,
            "sizes": [list(pair) for pair in self.sizes],
        }

    def with_alert(self, alert_id: str, session_ids: set[str]) -> WatchState:
        """Names the alert that announced these outages (for the follow-ups and recovery)."""
        gone = {
            k: replace(v, alert=alert_id) if k in session_ids else v for k, v in self.gone.items()
        }
        return replace(self, gone=gone)
