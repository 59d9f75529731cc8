"""One scan against the last: the pure heart of the watcher (no I/O, the clock passed in).

- An agent missing from a scan is *gone* since it was last seen. It becomes
  **disconnected** only once it has stayed gone for `min_down` with no successor, so a
  restart or a short flap pages nobody.
- A *successor* is a new session id with the same identity (credential, IP, metadata): the
  same agent back. A successor of a disconnected agent is **reconnected** (with the
  outage's duration); of an agent gone for less than min_down, nothing but a flap counted.
- **flapping**: `flapping_count` departures of one identity within `flapping_window`,
  reported once per window.
- **new**: an id that is nobody's successor (never on the first scan, the baseline).
- **version**: a successor or the same id with another agent version.
- An agent whose session was the target of the bot's own action (an `action:` record) is
  **own_left** and its successor **own_back**: noted in that action's thread, never alerted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from bot.ngrok.models import TunnelSession
from bot.watch.model import Agent, Change, Departure, Event, Gone, OwnAction, WatchState

HISTORY_SECONDS = 24 * 3600
DEPARTURE_SECONDS = 3600  # how long an agent the bot stopped or restarted may take to return
MAX_HISTORY = 5000
SIZE_EVERY = 600.0


@dataclass(frozen=True)
class Rules:
    min_down: float
    flapping_window: float
    flapping_count: int


def diff(
    state: WatchState,
    sessions: Iterable[TunnelSession],
    *,
    now: float,
    rules: Rules,
    own_actions: Sequence[OwnAction] = (),
) -> tuple[WatchState, list[Change]]:
    """The new state and the changes this scan found, in a stable order."""
    current = {s.id: s for s in sessions}
    first = state.scanned_at is None
    prev = state.agents
    actions = {a.session_id: a for a in own_actions}
    # New ids by identity: each may be claimed once, as somebody's successor.
    fresh: dict[str, list[str]] = {}
    for sid, session in current.items():
        if sid not in prev:
            identity = Agent.from_session(session, now=now, first_seen=now).identity
            fresh.setdefault(identity, []).append(sid)

    def claim(agent: Agent) -> Agent | None:
        if agent.id in current and agent.id not in prev:
            ids = fresh.get(agent.identity, [])
            if agent.id in ids:
                ids.remove(agent.id)
            return seen(agent.id, agent.first_seen)
        candidates = fresh.get(agent.identity)
        if not candidates:
            return None
        return seen(candidates.pop(0), agent.first_seen)

    def seen(sid: str, first_seen: float) -> Agent:
        return Agent.from_session(current[sid], now=now, first_seen=first_seen)

    changes: list[Change] = []
    agents: dict[str, Agent] = {}
    gone: dict[str, Gone] = {}
    departed: dict[str, Departure] = {}
    flaps = {
        k: tuple(t for t in v if now - t < rules.flapping_window) for k, v in state.flaps.items()
    }
    flapped: list[Agent] = []

    for sid, before in prev.items():
        if sid in current:
            agent = seen(sid, before.first_seen)
            agents[sid] = agent
            if before.version and agent.version and before.version != agent.version:
                changes.append(Change("version", agent, now, old=before))
            continue
        own = actions.get(sid)
        successor = claim(before)
        if own is not None:
            changes.append(Change("own_left", before, now, action=own))
            if successor is None:
                departed[sid] = Departure(before, own, now)
            else:
                agents[successor.id] = successor
                changes.append(
                    Change("own_back", successor, now, now - before.last_seen, before, action=own)
                )
            continue
        flaps[before.identity] = (*flaps.get(before.identity, ()), now)
        flapped.append(before)
        if successor is not None:
            agents[successor.id] = successor
            if before.version and successor.version and before.version != successor.version:
                changes.append(Change("version", successor, now, old=before))
        else:
            gone[sid] = Gone(before)

    for sid, was in state.gone.items():
        successor = claim(was.agent)
        if successor is not None:
            agents[successor.id] = successor
            if was.declared:
                seconds = now - was.agent.last_seen
                changes.append(
                    Change("reconnected", successor, now, seconds, was.agent, alert=was.alert)
                )
            continue
        if not was.declared and now - was.agent.last_seen >= rules.min_down:
            changes.append(Change("disconnected", was.agent, now, now - was.agent.last_seen))
            gone[sid] = replace(was, declared=True)
        else:
            gone[sid] = was

    for sid, left in state.departed.items():
        successor = claim(left.agent)
        if successor is not None:
            agents[successor.id] = successor
            seconds = now - left.agent.last_seen
            changes.append(
                Change("own_back", successor, now, seconds, left.agent, action=left.action)
            )
        elif now - left.at < DEPARTURE_SECONDS:
            departed[sid] = left

    for ids in fresh.values():
        for sid in ids:
            agent = seen(sid, now)
            agents[sid] = agent
            if not first:
                changes.append(Change("new", agent, now))

    flap_alerted = {k: t for k, t in state.flap_alerted.items() if now - t < rules.flapping_window}
    for agent in flapped:
        count = len(flaps.get(agent.identity, ()))
        if count >= rules.flapping_count and agent.identity not in flap_alerted:
            flap_alerted[agent.identity] = now
            changes.append(Change("flapping", agent, now, count=count))

    new_state = replace(
        state,
        scanned_at=now,
        agents=agents,
        gone=gone,
        departed=departed,
        flaps={k: v for k, v in flaps.items() if v},
        flap_alerted=flap_alerted,
        history=_history(state.history, changes, now),
        sizes=_sizes(state.sizes, len(agents), now),
    )
    return new_state, changes


def _history(history: Sequence[Event], changes: Sequence[Change], now: float) -> tuple[Event, ...]:
    kept = [e for e in history if now - e.at < HISTORY_SECONDS]
    for change in changes:
        if change.kind in ("disconnected", "reconnected", "new", "version", "flapping"):
            kept.append(Event(change.kind, change.at, change.agent.host, change.agent.id,
                              change.seconds))  # fmt: skip
    return tuple(kept[-MAX_HISTORY:])


def _sizes(
    sizes: Sequence[tuple[float, int]], online: int, now: float
) -> tuple[tuple[float, int], ...]:
    """A sample of the fleet's size every SIZE_EVERY seconds, for "change since yesterday"."""
    kept = [(t, n) for t, n in sizes if now - t < HISTORY_SECONDS + 3600]
    if not kept or now - kept[-1][0] >= SIZE_EVERY:
        kept.append((now, online))
    return tuple(kept)


def open_outages(state: WatchState) -> Mapping[str, Gone]:
    """Outages people were told about and that have not ended."""
    return {k: v for k, v in state.gone.items() if v.declared}
