"""Fleet runs in the store: `run:<id>` (small, moved by compare-and-set on its state) and
`runtargets:<id>` (the frozen target set, written once), plus one `runagent:<id>:<session>`
outcome per agent, created once.

States: planned (preview shown; its requester may change the plan, never the targets, each
change moving the record planned -> planned) -> requested (two-person request posted) ->
running <-> paused -> cancelling -> cancelled; running -> done | stopped (too many failures);
planned or requested -> denied; requested -> expired (nobody approved it in time).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.ngrok.models import Action, TunnelSession, as_action
from bot.state.store import Store

RUN_PREFIX = "run:"
TARGETS_PREFIX = "runtargets:"
AGENT_PREFIX = "runagent:"
RUN_SECONDS = 30 * 24 * 3600
ACTIVE_STATES = ("running", "paused", "cancelling")
FINAL_STATES = ("done", "stopped", "cancelled", "denied", "expired")


def new_run_id() -> str:
    return secrets.token_hex(6)


@dataclass(frozen=True)
class FleetRun:
    """What was approved: the action, who, where, the filter and the plan. The targets are
    kept apart (`runtargets:<id>`), so every state change rewrites a small record."""

    id: str
    state: str
    action: Action
    account: str
    requester: str
    channel: str
    thread_ts: str | None
    query_text: str
    count: int
    skipped: list[dict[str, Any]]
    canary: int
    batch: int
    max_failures: int | None
    mode: str
    created: float
    approver: str | None = None
    progress_ts: str | None = None
    progress_url: str = ""  # the progress message's permalink (chat.getPermalink), once known
    chain: str = ""
    beat: float = 0.0
    last_edit: float = 0.0
    seq: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    # The private preview's approval token, as ids and times (never the token itself):
    # {"nonce", "issued", "expires", "kind"}, so a plan change can void it and issue the next.
    preview: dict[str, Any] = field(default_factory=dict)
    newest_version: str | None = None  # an update run's newest version seen, for the summary

    @property
    def key(self) -> str:
        return RUN_PREFIX + self.id

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> FleetRun:
        action = as_action(str(record.get("action")))
        if action is None:
            raise ValueError("a run record names an unknown action")
        names = set(cls.__dataclass_fields__)
        values = {k: v for k, v in record.items() if k in names}
        values["action"] = action
        return cls(**values)


def save_new_run(store: Store, run: FleetRun, targets: list[TunnelSession]) -> None:
    store.put_request(
        TARGETS_PREFIX + run.id,
        {"state": "frozen", "targets": [t.to_api() for t in targets]},
        ttl_seconds=RUN_SECONDS,
    )
    store.put_request(run.key, run.to_record(), ttl_seconds=RUN_SECONDS)


def load_run(store: Store, run_id: str) -> FleetRun | None:
    record = store.get_request(RUN_PREFIX + run_id)
    return FleetRun.from_record(record) if record else None


def load_targets(store: Store, run_id: str) -> list[TunnelSession]:
    record = store.get_request(TARGETS_PREFIX + run_id) or {}
    return [TunnelSession.from_api(raw) for raw in record.get("targets") or []]


def move_run(store: Store, run: FleetRun, new_state: str, **changes: Any) -> FleetRun | None:
    """Compare-and-set from the run's current state; None when someone moved it first."""
    record = store.transition_request(
        run.key, expect_state=run.state, new_state=new_state, changes=changes
    )
    return FleetRun.from_record(record) if record else None


def agent_outcomes(store: Store, run_id: str) -> dict[str, dict[str, Any]]:
    """session id -> its final outcome record (state done / failed / skipped / left)."""
    prefix = f"{AGENT_PREFIX}{run_id}:"
    return {str(r["session_id"]): r for r in store.find_requests(prefix)}


def record_outcome(
    store: Store, run_id: str, session_id: str, state: str, sentence: str, **extra: Any
) -> bool:
    """True for the one caller that decided this agent's outcome."""
    record = {"state": state, "session_id": session_id, "sentence": sentence, **extra}
    return store.create_request(
        f"{AGENT_PREFIX}{run_id}:{session_id}", record, ttl_seconds=RUN_SECONDS
    )


def all_runs(store: Store) -> list[FleetRun]:
    runs = []
    for record in store.find_requests(RUN_PREFIX):
        try:
            runs.append(FleetRun.from_record(record))
        except (TypeError, ValueError):
            continue
    return sorted(runs, key=lambda r: r.created, reverse=True)
