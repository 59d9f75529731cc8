"""Slack user-group membership, read with usergroups.users.list and cached briefly.

Roles can be granted to user groups, so every permission check needs to know the groups of
a user. The cache keeps a page of calls per minute at most, and a removal from a group takes
effect within `ttl_seconds`.

When Slack cannot answer, the last membership read is used for at most `stale_seconds` after
it was read, so a short outage does not strip everyone's roles; after that the check fails
with `RolesUnconfirmed`, because a member removed from the group would otherwise keep its
role for as long as the outage lasts. A group Slack says does not exist grants nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger("ngrok_ops.groups")

DEFAULT_STALE_SECONDS = 300.0
# Answers that settle the question: the group is gone, so it grants nothing.
_NO_SUCH_GROUP = frozenset({"no_such_subteam", "subteam_not_found"})

UNCONFIRMED = (
    "Slack could not confirm your role, which comes from a user group (Slack's user-group "
    "lookup is failing), so nothing was done; try again in a few minutes."
)


class RolesUnconfirmed(RuntimeError):
    """Membership of a group could not be read and the last good read is too old to trust.
    `sentence` is for the user; the message (for the log) names the group and the error."""

    sentence = UNCONFIRMED


class GroupDirectory:
    """Maps a user to the configured user groups they belong to."""

    def __init__(
        self,
        client: WebClient,
        group_ids: Iterable[str],
        *,
        ttl_seconds: float = 60.0,
        stale_seconds: float = DEFAULT_STALE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._group_ids = tuple(sorted(set(group_ids)))
        self._ttl = ttl_seconds
        self._stale = max(stale_seconds, ttl_seconds)
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
        except (SlackApiError, OSError) as error:
            return self._fallback(group_id, cached, now, error)
        members = frozenset(response.get("users") or [])
        with self._lock:
            self._members[group_id] = (now, members)
        return members

    def _fallback(
        self,
        group_id: str,
        cached: tuple[float, frozenset[str]] | None,
        now: float,
        error: Exception,
    ) -> frozenset[str]:
        """The last good membership while it is recent enough; never cached, so the next
        check asks Slack again."""
        code = error.response.get("error") if isinstance(error, SlackApiError) else None
        reason = code or type(error).__name__
        if code in _NO_SUCH_GROUP:
            log.warning("user group %s does not exist (%s); it grants no role", group_id, code)
            return frozenset()
        if cached and now - cached[0] < self._stale:
            log.warning(
                "usergroups.users.list failed for %s (%s); using the membership read %.0f s ago",
                group_id, reason, now - cached[0],
            )  # fmt: skip
            return cached[1]
        raise RolesUnconfirmed(
            f"usergroups.users.list failed for {group_id} ({reason}) and no membership read "
            f"within the last {self._stale:.0f} s"
        )

    def groups_of(self, user_id: str) -> frozenset[str]:
        """The configured group ids whose members include user_id; RolesUnconfirmed when
        Slack cannot say and the last answer is too old."""
        return frozenset(g for g in self._group_ids if user_id in self._members_of(g))
