"""Run each delivery from Slack once: retried events and replayed slash commands.

Slack signs a request with a timestamp and accepts it for 5 minutes, so a captured slash
command can be sent again inside that window with a valid signature, and Slack itself
retries events it thinks were lost. Each delivery has an id Slack made (`trigger_id`,
`event_id`); the first process to claim it in the shared store runs it, the rest do nothing.
"""

from __future__ import annotations

from typing import Literal

from bot.state.store import Store

# Longer than the 5 minutes in which a signed request is accepted, plus clock skew.
REPLAY_WINDOW_SECONDS = 600.0

DeliveryKind = Literal["command", "event"]


def first_delivery(store: Store, kind: DeliveryKind, delivery_id: str | None) -> bool:
    """True for the first delivery of this id anywhere; a missing id cannot be matched, so
    it counts as first (Slack always sends one)."""
    if not delivery_id:
        return True
    return store.consume_nonce(f"{kind}:{delivery_id}", ttl_seconds=REPLAY_WINDOW_SECONDS)
