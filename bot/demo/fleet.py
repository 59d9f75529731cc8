"""A simulated ngrok account: a seeded fleet of agents, their endpoints and tunnels, and the
stop/restart/update state machine as the real API behaves (shared/reference/ngrok-api.md).

No HTTP here: `bot.demo.ngrok_api` serves it in process for `python -m bot console --demo`,
and the tests' stand-in (tests/servers/ngrok_api.py) serves it over real HTTP. Callers hold
one lock around every call.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from bot.demo.cel import ENDPOINT_FIELDS, SESSION_FIELDS, CelError, compile_filter
from bot.demo.ksuid import KSUID_EPOCH, SortedStore, is_ksuid, make_id, page, rfc3339

LATEST_VERSION = "3.26.1"
VERSIONS = ("3.19.0", "3.20.0", "3.21.1", "3.22.1", "3.23.3", "3.24.0", "3.25.0", "3.26.0")
REGIONS = ("us", "eu", "ap", "au", "sa", "jp", "in", "us-cal-1")
REGION_WEIGHTS = (35, 25, 10, 5, 5, 5, 5, 10)
REMOTE_MANAGEMENT_OFF = "remote management is disabled in the agent configuration"
WINDOWS_RESTART = "restart is not supported on Windows: the agent cannot exec() itself"
# resource -> (id prefix, filterable fields or None, array query parameters)
COLLECTIONS: dict[str, tuple[str, tuple[str, ...] | None, tuple[str, ...]]] = {
    "tunnel_sessions": ("ts_", SESSION_FIELDS, ()),
    "endpoints": ("ep_", ENDPOINT_FIELDS, ("ids", "urls")),
    "tunnels": ("tn_", None, ()),
}


class ApiError(Exception):
    """An API failure: `code` None gives the code-less shape of the real 404."""

    def __init__(
        self, status: int, code: str | None, msg: str, details: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status, code, msg)
        self.status = status
        self.code = code
        self.msg = msg
        self.details = dict(details or {})


@dataclass
class Agent:
    """One running agent: its session as served plus what the API cannot show."""

    session: dict[str, Any]
    endpoint_specs: list[dict[str, Any]]
    remote_management: bool = True
    updating: bool = False


@dataclass
class Fleet:
    """Every online agent with its endpoints and tunnels, plus agents between a restart and
    their reconnect. Deterministic for a seed: all randomness comes from `rng`."""

    base_url: str
    rng: random.Random
    endpoint_type: str = "ephemeral"
    agents: dict[str, Agent] = field(default_factory=dict)
    sessions: SortedStore = field(default_factory=SortedStore)
    endpoints: SortedStore = field(default_factory=SortedStore)
    tunnels: SortedStore = field(default_factory=SortedStore)
    pending: list[tuple[float, Agent]] = field(default_factory=list)
    last_ids: dict[str, int] = field(default_factory=dict)

    # ---- generation -------------------------------------------------------------------
    def generate(self, count: int, anchor: float) -> None:
        """`count` sessions started over the 60 days before `anchor`, plus cloud endpoints."""
        starts = sorted(anchor - self.rng.uniform(60, 60 * 86400) for _ in range(count))
        specials = ["none", "none", "4096", "4096", "emoji", "channel", "amp", "mention"]
        kinds = {i: specials[n] for n, i in enumerate(self.rng.sample(range(count), min(8, count)))}
        creds = [self._new_id("cr_", anchor - 90 * 86400) for _ in range(max(3, count // 8))]
        for index, at in enumerate(starts):
            self._add_agent(self._random_session(at, creds, kinds.get(index)), at, None)
        for _ in range(max(2, count // 25)):
            self._add_cloud_endpoint(anchor - self.rng.uniform(60, 60 * 86400))

    def _new_id(self, prefix: str, at: float, monotonic: bool = False) -> str:
        """With `monotonic` the id sorts after every earlier one with this prefix (the newest);
        otherwise only after those from earlier seconds, as real KSUIDs do."""
        last = self.last_ids.get(prefix)
        if not monotonic and last is not None and int(at) - KSUID_EPOCH < last >> 128:
            last = None
        obj_id, value = make_id(prefix, at, self.rng, last)
        self.last_ids[prefix] = max(value, self.last_ids.get(prefix, 0))
        return obj_id

    def _random_session(self, at: float, creds: list[str], kind: str | None) -> dict[str, Any]:
        rng = self.rng
        ssh = rng.random() < 0.08
        session: dict[str, Any] = {
            "agent_version": None if ssh else rng.choice((*VERSIONS, *[LATEST_VERSION] * 4)),
            "credential": self._credential_ref(rng.choice(creds), ssh),
            "ip": self._random_ip(),
            "metadata": self._random_metadata(kind),
            "os": None if ssh else rng.choices(("linux", "windows", "darwin"), (75, 12, 13))[0],
            "region": rng.choices(REGIONS, REGION_WEIGHTS)[0],
            "started_at": rfc3339(at),
            "transport": "ssh" if ssh else "ngrok/2",
        }
        if rng.random() < 0.1:  # an unknown field, as a newer API version might add
            session["agent_platform"] = {"arch": rng.choice(("amd64", "arm64")), "go": "go1.22.5"}
        return session

    def _random_ip(self) -> str:
        rng = self.rng
        if rng.random() < 0.05:
            return f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(1, 65536):x}"
        first = rng.choice((203, 198, 192, 34, 52, 81))
        return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"

    def _random_metadata(self, kind: str | None) -> str | None:
        rng = self.rng
        if kind is None:
            kind = rng.choices(("none", "json", "plain", "json-emoji"), (15, 60, 15, 10))[0]
        host = f"{rng.choice(('web', 'api', 'db', 'edge', 'worker'))}-{rng.randrange(1, 40)}"
        team = rng.choice(("payments", "search", "infra", "growth", "data"))
        env = rng.choice(("prod", "staging", "dev"))
        return {
            "none": None,
            "json": json.dumps({"env": env, "team": team, "host": host}),
            "json-emoji": json.dumps(
                {"env": env, "team": f"{team} 🚀", "host": host}, ensure_ascii=False
            ),
            "plain": f"{host}.{env}.internal",
            "4096": ('{"host":"' + host + '","blob":"' + "x" * 4096)[:4094] + '"}',
            "emoji": f"🔥 {host} on fire 🧯 — ünïcødé",
            "channel": f"<!channel> {host} <b>bold</b> *stars* _under_",
            "amp": f"{team} & ops <> \"quotes\" 'single' {host}",
            "mention": f"owner <@U123> <#C042|ops> {host}",
        }[kind]

    def _credential_ref(self, cred_id: str, ssh: bool) -> dict[str, str]:
        """SSH sessions authenticate with an SSH public key credential (`sshcr_`)."""
        return (
            self._ref("ssh_credentials", "ssh" + cred_id)
            if ssh
            else self._ref("credentials", cred_id)
        )

    def _ref(self, kind: str, obj_id: str) -> dict[str, str]:
        return {"id": obj_id, "uri": f"{self.base_url}/{kind}/{obj_id}"}

    def _random_endpoint_specs(self, ssh: bool, count: int | None) -> list[dict[str, Any]]:
        rng = self.rng
        if count is None:
            count = 1 if ssh else rng.choices((0, 1, 2, 3), (15, 50, 25, 10))[0]
        specs = []
        for _ in range(count):
            proto = "tcp" if ssh else rng.choices(("https", "tcp", "tls"), (80, 15, 5))[0]
            port = rng.choice((80, 3000, 8080, 5432, 22))
            if proto == "tcp":
                url = f"tcp://{rng.randrange(9)}.tcp.ngrok.io:{rng.randrange(10000, 20000)}"
            else:
                url = f"{proto}://{rng.getrandbits(48):012x}.ngrok-free.app"
            spec = {"proto": proto, "url": url, "upstream_url": f"http://localhost:{port}"}
            spec["name"] = rng.choice(("command_line", "web", "api", "ssh"))
            if rng.random() < 0.3:
                spec["metadata"] = json.dumps({"service": spec["name"]})
            specs.append(spec)
        return specs

    def _add_agent(self, session: dict[str, Any], at: float, endpoint_count: int | None) -> Agent:
        session = {k: v for k, v in session.items() if v not in (None, "")}
        if "id" not in session:
            session["id"] = self._new_id("ts_", at, monotonic=True)
        session["uri"] = f"{self.base_url}/tunnel_sessions/{session['id']}"
        session = dict(sorted(session.items()))  # the real API's key order
        ssh = session.get("transport") == "ssh"
        agent = Agent(session, self._random_endpoint_specs(ssh, endpoint_count))
        self._bring_online(agent, at)
        return agent

    def _bring_online(self, agent: Agent, at: float) -> None:
        self.agents[agent.session["id"]] = agent
        self.sessions.add(agent.session)
        for offset, spec in enumerate(agent.endpoint_specs, start=1):
            self._add_agent_endpoint(agent.session, spec, at + offset)

    def _add_agent_endpoint(self, session: dict[str, Any], spec: dict[str, Any], at: float) -> None:
        ep_id = self._new_id("ep_", at)
        tn_id = "tn_" + ep_id[3:]
        host = spec["url"].split("://", 1)[1]
        hostport = host if spec["proto"] == "tcp" else f"{host}:443"
        endpoint: dict[str, Any] = {
            "id": ep_id,
            "bindings": ["public"],
            "created_at": rfc3339(at),
            "updated_at": rfc3339(at),
            "hostport": hostport,
            "name": spec["name"],
            "metadata": spec.get("metadata"),
            "pooling_enabled": False,
            "principal": {"id": "usr_2fakePrincipalForTestsXYZ01", "uri": ""},
            "proto": spec["proto"],
            "public_url": spec["url"],
            "tunnel": self._ref("tunnels", tn_id),
            "tunnel_session": self._ref("tunnel_sessions", session["id"]),
            "type": self.endpoint_type,
            "upstream_url": spec["upstream_url"],
            "url": spec["url"],
        }
        self.endpoints.add({k: v for k, v in endpoint.items() if v is not None})
        tunnel: dict[str, Any] = {
            "id": tn_id,
            "public_url": spec["url"],
            "started_at": rfc3339(at),
            "metadata": spec.get("metadata"),
            "proto": spec["proto"],
            "region": session.get("region"),
            "tunnel_session": self._ref("tunnel_sessions", session["id"]),
            "endpoint": self._ref("endpoints", ep_id),
            "forwards_to": spec["upstream_url"],
        }
        self.tunnels.add({k: v for k, v in tunnel.items() if v is not None})

    def _add_cloud_endpoint(self, at: float) -> None:
        ep_id = self._new_id("ep_", at)
        name = self.rng.choice(("api", "app", "hooks", "status"))
        url = f"https://{name}.example.com"
        self.endpoints.add(
            {
                "id": ep_id,
                "created_at": rfc3339(at),
                "updated_at": rfc3339(at),
                "url": url,
                "public_url": url,
                "proto": "https",
                "hostport": f"{name}.example.com:443",
                "type": "cloud",
                "bindings": ["public"],
                "description": f"cloud endpoint for {name}",
                "traffic_policy": '{"on_http_request":[{"actions":[{"type":"deny"}]}]}',
                "principal": {"id": "usr_2fakePrincipalForTestsXYZ01", "uri": ""},
                "pooling_enabled": False,
                "uri": f"{self.base_url}/endpoints/{ep_id}",
            }
        )

    # ---- queries and changes ----------------------------------------------------------
    def store(self, name: str) -> SortedStore:
        return {"tunnel_sessions": self.sessions, "endpoints": self.endpoints}.get(
            name, self.tunnels
        )

    def get_object(self, name: str, obj_id: str) -> dict[str, Any]:
        obj = self.store(name).items.get(obj_id)
        if obj is None:
            raise ApiError(404, None, "Resource not found")
        return obj

    def list_page(
        self, name: str, params: Mapping[str, list[str]], keeps_filter: bool
    ) -> dict[str, Any]:
        """One page of a list resource, newest first, filtered before paging; the objects in
        it are live (serialize them before releasing the lock)."""
        prefix, fields, _ = COLLECTIONS[name]
        raw_limit = params.get("limit", ["100"])[0]
        if not (raw_limit.isascii() and raw_limit.isdigit() and 1 <= int(raw_limit) <= 100):
            raise ApiError(400, "ERR_NGROK_233", "The 'limit' parameter must be between 1 and 100.")
        limit = int(raw_limit)
        before_id = params.get("before_id", [None])[0]
        if before_id is not None and not (
            before_id.startswith(prefix) and is_ksuid(before_id[len(prefix) :])
        ):
            raise ApiError(
                400, "ERR_NGROK_223", f"The resource reference ID '{before_id}' is invalid."
            )
        source = params.get("filter", [""])[0]
        predicate = _compile(source, fields) if source.strip() else None
        wanted_ids = {v for raw in params.get("ids", []) for v in raw.split(",") if v}
        wanted_urls = {v for raw in params.get("urls", []) for v in raw.split(",") if v}

        def matches(obj: Mapping[str, Any]) -> bool:
            return (
                (not wanted_ids or obj["id"] in wanted_ids)
                and (not wanted_urls or obj.get("url") in wanted_urls)
                and (predicate is None or predicate(obj))
            )

        items, more = page(self.store(name), before_id, limit, matches)
        next_uri = None
        if more:
            query = {"before_id": items[-1]["id"], "limit": str(limit)}
            if keeps_filter and source:
                query["filter"] = source
            next_uri = f"{self.base_url}/{name}?{urlencode(query)}"
        return {name: items, "uri": f"{self.base_url}/{name}", "next_page_uri": next_uri}

    def add_session(
        self, at: float, fields: Mapping[str, Any], endpoint_count: int | None
    ) -> dict[str, Any]:
        session = self._random_session(at, [self._new_id("cr_", at)], None)
        session.pop("agent_platform", None)
        for key, value in fields.items():
            if key == "credential" and isinstance(value, str):
                value = self._ref("credentials", value)
            session[key] = value
        return self._add_agent(session, at, endpoint_count).session

    def find(self, session_id: str) -> Agent:
        agent = self.agents.get(session_id)
        if agent is None:
            raise ApiError(404, None, "Resource not found")
        return agent

    def take_offline(self, agent: Agent) -> None:
        session_id = agent.session["id"]
        del self.agents[session_id]
        self.sessions.remove(session_id)
        for store in (self.endpoints, self.tunnels):
            gone = [
                o["id"]
                for o in store.items.values()
                if o.get("tunnel_session", {}).get("id") == session_id
            ]
            for obj_id in gone:
                store.remove(obj_id)

    def apply_action(self, session_id: str, action: str, now: float, restart_delay: float) -> None:
        """Runs stop/restart/update the way the agent would, or raises the API's refusal."""
        agent = self.find(session_id)
        session = agent.session
        if session.get("transport") == "ssh" and action in ("update", "restart"):
            code = "ERR_NGROK_1121" if action == "update" else "ERR_NGROK_1122"
            done = "updated" if action == "update" else "restarted"
            raise ApiError(
                400, code, f"SSH tunnel sessions cannot be {done}. Session: {session_id}"
            )
        refusal = {"restart": "ERR_NGROK_804", "stop": "ERR_NGROK_805", "update": "ERR_NGROK_806"}
        if not agent.remote_management:
            raise ApiError(
                400,
                refusal[action],
                f"The agent does not support remote {action}: {REMOTE_MANAGEMENT_OFF}",
            )
        if action == "restart" and session.get("os") == "windows":
            raise ApiError(
                400,
                "ERR_NGROK_804",
                f"The agent does not support remote restart: {WINDOWS_RESTART}",
            )
        if action == "update":
            if agent.updating:
                raise ApiError(
                    400,
                    "ERR_NGROK_809",
                    "The agent failed to update: an update is already in progress",
                )
            if session.get("agent_version") == LATEST_VERSION:
                raise ApiError(
                    400, "ERR_NGROK_809", "The agent failed to update: no update available"
                )
            agent.updating = True
            return
        self.take_offline(agent)
        if action == "restart":
            self.pending.append((now + restart_delay, agent))

    def reconnect_due(self, now: float) -> None:
        """Brings restarted agents back, each under a new (newest) session id."""
        due = sorted((p for p in self.pending if p[0] <= now), key=lambda p: p[0])
        self.pending = [p for p in self.pending if p[0] > now]
        for at, old in due:
            session = copy.deepcopy(old.session)
            for key in ("id", "uri"):
                session.pop(key)
            session["started_at"] = rfc3339(at)
            if old.updating:
                session["agent_version"] = LATEST_VERSION
            agent = Agent(session, old.endpoint_specs, old.remote_management)
            session["id"] = self._new_id("ts_", at, monotonic=True)
            session["uri"] = f"{self.base_url}/tunnel_sessions/{session['id']}"
            agent.session = dict(sorted(session.items()))
            self._bring_online(agent, at)


def _compile(source: str, fields: tuple[str, ...] | None) -> Callable[[Mapping[str, Any]], bool]:
    try:
        return compile_filter(source, fields or ())
    except CelError as error:
        raise ApiError(400, "invalid_cel_expression", f"invalid CEL expression: {error}") from None
