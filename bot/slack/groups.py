"""Slack user-group membership, read with usergroups.users.list and cached briefly.

Roles can be granted to user groups, so every permission check needs to know the groups of
a user. The cache keeps a page of calls per minute at most, and a removal from a group takes
effect within `ttl_seconds`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger("ngrok_ops.groups")


class GroupDirectory:
    """Maps a user to the configured user groups they belong to."""

    def __init__(
        self,
        client: WebClient,
        group_ids: Iterable[str],
        *,
        ttl_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._group_ids = tuple(sorted(set(group_ids)))
        self._ttl = ttl_seconds
        self._clock = clock
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def _members_of(self, group_id: str) -> frozenset[str]:
        now = self._clock()
        with self._lock:
            cached = self._members.get(group_id)
        if cached and now - cached[0] < self._ttl:
            return cached[1]
        try:
            response = self._client.usergroups_users_list(usergroup=group_id)
        except SlackApiError as error:
            # A passing Slack failure must not strip everyone's roles for a whole TTL: keep
            # the last membership we read; a group never read grants nothing. Not cached, so
            # the next check asks again.
            log.warning(
                "usergroups.users.list failed for %s: %s", group_id, error.response.get("error")
            )
            return cached[1] if cached else frozenset()
        members = frozenset(response.get("users") or [])
        with self._lock:
            self._members[group_id] = (now, members)
        return members

    def groups_of(self, user_id: str) -> frozenset[str]:
        """The configured group ids whose members include user_id."""
        return frozenset(g for g in self._group_ids if user_id in self._members_of(g))
