"""Time-ordered ids and stores for the simulated ngrok API.

Ids are KSUIDs (`ts_` + 27 base62 chars: a 4-byte timestamp then 16 random bytes) like the
real API's, so they sort by creation time and `before_id` paging can compare strings.
"""

from __future__ import annotations

import bisect
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KSUID_EPOCH = 1_400_000_000

_PAIRS = [a + b for a in BASE62 for b in BASE62]
_DIGITS = {ch: i for i, ch in enumerate(BASE62)}


def encode_ksuid(value: int) -> str:
    """27 base62 digits; the alphabet is in ASCII order, so string order is numeric order."""
    pairs = []
    for _ in range(14):
        value, pair = divmod(value, 3844)
        pairs.append(_PAIRS[pair])
    return "".join(reversed(pairs))[1:]


def decode_ksuid(text: str) -> int:
    value = 0
    for ch in text:
        value = value * 62 + _DIGITS[ch]
    return value


def make_id(
    prefix: str, at: float, rng: random.Random, after: int | None = None
) -> tuple[str, int]:
    """A KSUID for time `at` (and its value); greater than the value `after` when given."""
    value = (max(int(at) - KSUID_EPOCH, 0) << 128) | rng.getrandbits(128)
    if after is not None and value <= after:
        value = after + 1 + rng.getrandbits(32)
    return prefix + encode_ksuid(value), value


def rfc3339(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(at)))


class SortedStore:
    """Objects keyed by a time-ordered id, iterable newest first from any `before_id`."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []

    def add(self, obj: dict[str, Any]) -> None:
        self.items[obj["id"]] = obj
        bisect.insort(self.order, obj["id"])

    def remove(self, obj_id: str) -> None:
        if self.items.pop(obj_id, None) is not None:
            del self.order[bisect.bisect_left(self.order, obj_id)]

    def newest_first(self, before_id: str | None = None) -> Iterator[dict[str, Any]]:
        end = len(self.order) if before_id is None else bisect.bisect_left(self.order, before_id)
        for index in range(end - 1, -1, -1):
            yield self.items[self.order[index]]


def page(
    store: SortedStore,
    before_id: str | None,
    limit: int,
    predicate: Callable[[Mapping[str, Any]], bool],
) -> tuple[list[dict[str, Any]], bool]:
    """Up to `limit` matching objects newest first, and whether more follow."""
    found: list[dict[str, Any]] = []
    for obj in store.newest_first(before_id):
        if predicate(obj):
            if len(found) == limit:
                return found, True
            found.append(obj)
    return found, False


def is_ksuid(text: str) -> bool:
    return len(text) == 27 and all(ch in _DIGITS for ch in text)
