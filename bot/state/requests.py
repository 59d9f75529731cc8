"""The two-person request as it crosses modules: a frozen record, stored as a plain dict.

The store keeps requests as JSON objects and moves their `state` by compare-and-set; this
type is the one agreed shape of that object, so no caller spells its keys by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from bot.ngrok.models import Action, TunnelSession, as_action

RequestState = Literal["requested", "running", "done", "failed", "denied", "expired", "withdrawn"]
REQUEST_STATES: tuple[RequestState, ...] = get_args(RequestState)


@dataclass(frozen=True)
class TwoPersonRequest:
    """A request waiting for (or decided by) a second person."""

    id: str
    state: RequestState
    action: Action
    session: TunnelSession
    requester: str
    channel: str
    thread_ts: str | None
    account: str
    ttl: int
    ts: str | None = None
    decided_by: str | None = None

    @classmethod
    def from_record(cls, raw: Mapping[str, Any]) -> TwoPersonRequest:
        """Parses a stored record; a record this code did not write raises ValueError."""
        action = as_action(str(raw.get("action")))
        state = raw.get("state")
        if action is None or state not in REQUEST_STATES:
            raise ValueError(f"not a two-person request record: {raw.get('id')!r}")
        return cls(
            id=str(raw["id"]),
            state=state,
            action=action,
            session=TunnelSession.from_api(raw["session"]),
            requester=str(raw["requester"]),
            channel=str(raw["channel"]),
            thread_ts=raw.get("thread_ts"),
            account=str(raw["account"]),
            ttl=int(raw["ttl"]),
            ts=raw.get("ts"),
            decided_by=raw.get("decided_by"),
        )

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.id,
            "state": self.state,
            "action": self.action,
            "session": self.session.to_api(),
            "requester": self.requester,
            "channel": self.channel,
            "thread_ts": self.thread_ts,
            "account": self.account,
            "ttl": self.ttl,
        }
        if self.ts:
            record["ts"] = self.ts
        if self.decided_by:
            record["decided_by"] = self.decided_by
        return record

    def moved(self, state: RequestState) -> TwoPersonRequest:
        return replace(self, state=state)
