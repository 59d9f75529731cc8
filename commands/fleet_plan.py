"""The plan of a fleet run, pure: which matching agents are acted on and which are skipped
(and why), the canary and the batches, the requests the run must make and its ETA from the
shared ngrok budget. Text in the preview and numbers in the benchmark come from here."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from bot.ngrok.hosts import DEFAULT_HOST_KEYS, host_of
from bot.ngrok.models import Action, TunnelSession, unsupported_reason
from bot.ngrok.pacing import urgent_reserve
from commands.grammar import RunOptions, compare_versions

MAX_DEFAULT_BATCH = 50
TARGET_BATCHES = 10
# One successor look lists up to this many agents' IPs in one CEL filter (one request).
IPS_PER_LOOK = 40
SUCCESSOR_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Skipped:
    session_id: str
    host: str | None
    reason: str


@dataclass(frozen=True)
class RunPlan:
    action: Action
    targets: tuple[TunnelSession, ...]
    skipped: tuple[Skipped, ...]
    canary: int
    batch: int
    newest_version: str | None

    @property
    def batches(self) -> list[tuple[TunnelSession, ...]]:
        """The canary first, then batches of `batch`."""
        return split_batches(self.targets, self.canary, self.batch)


def split_batches(
    targets: Sequence[TunnelSession], canary: int, batch: int
) -> list[tuple[TunnelSession, ...]]:
    first = tuple(targets[:canary])
    rest = targets[canary:]
    return ([first] if first else []) + [
        tuple(rest[i : i + batch]) for i in range(0, len(rest), max(batch, 1))
    ]


def newest_version(sessions: Sequence[TunnelSession]) -> str | None:
    """The newest agent version seen in the fleet (None when no version parses)."""
    best: str | None = None
    for session in sessions:
        version = session.agent_version
        try:
            if version and (best is None or compare_versions(version, best) > 0):
                best = version
        except ValueError:
            continue
    return best


def skip_reason(action: Action, session: TunnelSession, newest: str | None) -> str | None:
    """Why a matching agent is left out of a run; None when it is acted on."""
    if session.is_ssh:
        return "SSH sessions cannot be restarted or updated" if action != "stop" else None
    if action in ("restart", "update") and session.is_windows:
        return "Windows agents cannot restart themselves"
    if action == "update" and newest and session.agent_version == newest:
        return f"already on {newest}, the newest version seen in the fleet"
    return unsupported_reason(action, session)


def default_batch(remaining: int) -> int:
    return max(1, min(MAX_DEFAULT_BATCH, math.ceil(remaining / TARGET_BATCHES)))


def plan_run(
    action: Action,
    matched: Sequence[TunnelSession],
    fleet: Sequence[TunnelSession],
    options: RunOptions,
    host_keys: Sequence[str] = DEFAULT_HOST_KEYS,
) -> RunPlan:
    """Targets in a stable order (oldest session first), the rest skipped with a reason."""
    newest = newest_version(fleet) if action == "update" else None
    targets: list[TunnelSession] = []
    skipped: list[Skipped] = []
    for session in sorted(matched, key=lambda s: s.id):
        reason = skip_reason(action, session, newest)
        if reason:
            skipped.append(Skipped(session.id, host_of(session, host_keys), reason))
        else:
            targets.append(session)
    canary = min(options.canary, len(targets))
    batch = options.batch or default_batch(len(targets) - canary)
    return RunPlan(action, tuple(targets), tuple(skipped), canary, batch, newest)


def requests_needed(action: Action, batches: Sequence[Sequence[TunnelSession]]) -> int:
    """The ngrok requests a run must make: its POSTs (update: update and restart) and, per
    batch, one look for every IPS_PER_LOOK agents coming back (stop: none)."""
    posts_per_agent = 2 if action == "update" else 1
    total = 0
    for batch in batches:
        total += posts_per_agent * len(batch)
        if action != "stop":
            total += math.ceil(len(batch) / IPS_PER_LOOK)
    return total


def run_rate(max_requests: int, per_seconds: float) -> float:
    """Requests per second a run may use: the budget without the urgent reserve."""
    return (max_requests - urgent_reserve(max_requests)) / per_seconds


def estimate_seconds(
    action: Action,
    batches: Sequence[Sequence[TunnelSession]],
    *,
    max_requests: int,
    per_seconds: float,
    update_delay: float,
) -> float:
    """Requests over the run's rate, plus the waits the budget cannot fill. A restart run
    waits one look per batch for its agents to come back. An update run waits the canary's
    update delay and look; after it, a batch's updates go out while the one before comes back
    (commands/fleet_exec.py), so a batch waits only what of the update delay sending its
    updates did not cover, and the last batch one look."""
    rate = run_rate(max_requests, per_seconds)
    seconds = requests_needed(action, batches) / rate
    if action == "stop" or not batches:
        return seconds
    if action == "restart":
        return seconds + SUCCESSOR_POLL_SECONDS * len(batches)
    waits = update_delay + SUCCESSOR_POLL_SECONDS
    for batch in batches[1:]:
        waits += max(0.0, update_delay - len(batch) / rate)
    if len(batches) > 1:
        waits += SUCCESSOR_POLL_SECONDS
    return seconds + waits


def breakdown(sessions: Sequence[TunnelSession]) -> dict[str, Counter[str]]:
    return {
        "Regions": Counter(s.region or "?" for s in sessions),
        "OS": Counter(s.os or ("ssh" if s.is_ssh else "?") for s in sessions),
        "Versions": Counter(s.agent_version or ("ssh" if s.is_ssh else "?") for s in sessions),
    }
