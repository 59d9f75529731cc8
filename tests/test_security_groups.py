"""Finding 8: user groups fail closed once Slack has been unable to confirm them for too long."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient

from bot.slack.groups import UNCONFIRMED, GroupDirectory, RolesUnconfirmed
from bot.slack.views.errors import SORRY
from commands.jobs import sorry_for


def directory(slack_api, clock: list[float], group: str = "S0ONCALL") -> GroupDirectory:
    client = WebClient(token=slack_api.bot_token, base_url=slack_api.base_url)
    return GroupDirectory(
        client, [group], ttl_seconds=10, stale_seconds=300, clock=lambda: clock[0]
    )


def fail_next(slack_api) -> None:
    slack_api.fail_next("usergroups.users.list", status=200, error="fatal_error", retry_after=None)


def test_the_last_good_membership_counts_only_for_a_bounded_time(slack_api):
    slack_api.set_usergroup("S0ONCALL", ["U0DAVE"])
    clock = [0.0]
    groups = directory(slack_api, clock)
    assert groups.groups_of("U0DAVE") == frozenset({"S0ONCALL"})
    clock[0] = 299.0
    fail_next(slack_api)
    assert groups.groups_of("U0DAVE") == frozenset({"S0ONCALL"})
    clock[0] = 301.0
    fail_next(slack_api)
    with pytest.raises(RolesUnconfirmed) as refused:
        groups.groups_of("U0DAVE")
    assert "S0ONCALL" in str(refused.value) and "fatal_error" in str(refused.value)


def test_a_group_never_read_is_unconfirmed_while_slack_fails(slack_api):
    slack_api.set_usergroup("S0ONCALL", ["U0DAVE"])
    fail_next(slack_api)
    with pytest.raises(RolesUnconfirmed):
        directory(slack_api, [0.0]).groups_of("U0DAVE")


def test_a_group_slack_says_does_not_exist_grants_nothing(slack_api):
    assert directory(slack_api, [0.0], "S0MISSING").groups_of("U0DAVE") == frozenset()


def test_the_user_is_told_that_slack_could_not_confirm_the_role():
    assert "Slack could not confirm your role" in UNCONFIRMED
    assert sorry_for(RolesUnconfirmed("S0ONCALL: fatal_error")) == UNCONFIRMED
    assert sorry_for(RuntimeError("boom")) == SORRY
