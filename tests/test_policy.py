"""Policy decisions over real configs loaded from YAML, the way the bot builds them."""

import pytest

from bot import policy
from bot.ngrok.models import TunnelSession
from bot.policy import APPROVE, OPERATE, VIEW
from bot.settings.bot_config import load_config

ENV = {"NGROK_API_KEY": "k" * 40, "NGROK_API_KEY_PROD": "p" * 40}

CONFIG = load_config(
    """\
roles:
  viewer: [U0VIEWER, S0LOOKERS]
  operator: [U0OPS, S0OPSTEAM]
  approver: [U0SRE, S0SRELEADS]
accounts:
  prod: {api_key_env: NGROK_API_KEY_PROD}
  staging: {api_key_env: NGROK_API_KEY}
default_account: staging
channels:
  C0INCIDENTS: {account: prod, actions: true}
  C0LOOK: {account: prod}
rules:
  - action: stop
    approval: two-person
  - action: [restart, update]
    approval: two-person
    match: {metadata_contains: ["env=prod"]}
  - action: restart
    approval: two-person
    match: {regions: [eu]}
""",
    source="test.yml",
    env=ENV,
)
UNCONFIGURED = load_config(None, source="BOT_CONFIG", env=ENV)


class GroupDirectory:
    """Stands in for the caller's cached usergroups.users.list lookup, and counts calls."""

    def __init__(self, memberships):
        self.memberships = memberships
        self.calls = []

    def __call__(self, user_id):
        self.calls.append(user_id)
        return frozenset(g for g, users in self.memberships.items() if user_id in users)


NO_GROUPS = GroupDirectory({})


def test_roles_granted_to_user_ids():
    assert policy.roles_of(CONFIG, "U0VIEWER", NO_GROUPS) == {VIEW}
    assert policy.roles_of(CONFIG, "U0OPS", NO_GROUPS) == {VIEW, OPERATE}
    assert policy.roles_of(CONFIG, "U0SRE", NO_GROUPS) == {VIEW, APPROVE}
    assert policy.roles_of(CONFIG, "U0STRANGER", NO_GROUPS) == frozenset()


def test_roles_granted_through_user_groups():
    directory = GroupDirectory({"S0OPSTEAM": {"U0ALICE"}, "S0SRELEADS": {"U0ALICE", "U0BOB"}})
    assert policy.roles_of(CONFIG, "U0ALICE", directory) == {VIEW, OPERATE, APPROVE}
    assert policy.roles_of(CONFIG, "U0BOB", directory) == {VIEW, APPROVE}
    assert directory.calls == ["U0ALICE", "U0BOB"]


def test_group_lookup_is_skipped_when_no_role_is_given_to_groups():
    config = load_config("roles:\n  operator: [U0OPS]\n", source="c.yml", env=ENV)
    directory = GroupDirectory({"S0ANY": {"U0OPS"}})
    assert policy.roles_of(config, "U0OPS", directory) == {VIEW, OPERATE}
    assert policy.roles_of(config, "U0OTHER", directory) == {VIEW}
    assert directory.calls == []


def test_star_grants_a_role_to_everyone():
    config = load_config(
        "roles:\n  operator: ['*']\n  approver: [U0SRE]\n", source="c.yml", env=ENV
    )
    assert policy.roles_of(config, "U0ANYONE", NO_GROUPS) == {VIEW, OPERATE}
    assert policy.roles_of(config, "U0SRE", NO_GROUPS) == {VIEW, OPERATE, APPROVE}


def test_view_needs_the_viewer_role_and_an_account():
    assert policy.may_view(CONFIG, frozenset({VIEW}), "C0ANY").allowed
    refused = policy.may_view(CONFIG, frozenset(), "C0ANY")
    assert not refused.allowed
    assert "roles.viewer" in refused.reason and "BOT_CONFIG" in refused.reason

    two_accounts = load_config(
        "accounts:\n  a: {api_key_env: NGROK_API_KEY}\n  b: {api_key_env: NGROK_API_KEY}\n",
        source="c.yml",
        env=ENV,
    )
    no_account = policy.may_view(two_accounts, frozenset({VIEW}), "C0ELSEWHERE")
    assert not no_account.allowed
    assert "default_account" in no_account.reason and "C0ELSEWHERE" in no_account.reason


def test_accounts_visible_to_are_those_bound_to_a_channel_plus_the_default():
    env = {"NGROK_API_KEY": "ngrok-key-0123456789", "K_LAB": "ngrok-key-lab-0123456789"}
    head = "accounts:\n  prod: {api_key_env: NGROK_API_KEY}\n  lab: {api_key_env: K_LAB}\n"
    unbound = load_config(head + "default_account: prod\n", source="c.yml", env=env)
    assert policy.accounts_visible_to(unbound, frozenset({VIEW})) == ["prod"]
    assert policy.accounts_visible_to(unbound, frozenset({APPROVE, VIEW})) == ["prod"]
    assert policy.accounts_visible_to(unbound, frozenset()) == []
    bound = load_config(
        head + "default_account: prod\nchannels:\n  C0LAB: {account: lab}\n",
        source="c.yml", env=env,
    )  # fmt: skip
    assert policy.accounts_visible_to(bound, frozenset({VIEW})) == ["lab", "prod"]
    assert policy.accounts_visible_to(bound, frozenset({OPERATE})) == []  # roles_of adds VIEW
    no_default = load_config(head + "channels:\n  C0LAB: {account: lab}\n", source="c", env=env)
    assert policy.accounts_visible_to(no_default, frozenset({VIEW})) == ["lab"]
    assert policy.accounts_visible_to(CONFIG, frozenset({VIEW})) == ["prod", "staging"]


def test_account_for_channel_prefers_the_binding_then_the_default():
    assert policy.account_for_channel(CONFIG, "C0INCIDENTS").name == "prod"
    assert policy.account_for_channel(CONFIG, "C0LOOK").name == "prod"
    assert policy.account_for_channel(CONFIG, "C0ELSEWHERE").name == "staging"
    assert policy.account_for_channel(UNCONFIGURED, "C0ANY").name == "default"


def test_request_needs_operator_and_a_channel_that_allows_actions():
    operator = frozenset({VIEW, OPERATE})
    assert policy.may_request(CONFIG, operator, "restart", "C0INCIDENTS").allowed

    listed_without_actions = policy.may_request(CONFIG, operator, "restart", "C0LOOK")
    assert not listed_without_actions.allowed
    assert "C0LOOK" in listed_without_actions.reason
    assert "actions: true" in listed_without_actions.reason

    unlisted = policy.may_request(CONFIG, operator, "stop", "C0ELSEWHERE")
    assert not unlisted.allowed and "actions: true" in unlisted.reason

    viewer = policy.may_request(CONFIG, frozenset({VIEW}), "update", "C0INCIDENTS")
    assert not viewer.allowed
    assert "roles.operator" in viewer.reason and "update" in viewer.reason

    both = policy.may_request(CONFIG, frozenset({VIEW}), "stop", "C0LOOK")
    assert not both.allowed
    assert "roles.operator" in both.reason and "C0LOOK" in both.reason


def test_approver_alone_may_not_request():
    decision = policy.may_request(CONFIG, frozenset({VIEW, APPROVE}), "stop", "C0INCIDENTS")
    assert not decision.allowed and "roles.operator" in decision.reason


def test_safe_default_lets_everyone_look_and_nobody_act():
    roles = policy.roles_of(UNCONFIGURED, "U0ANYONE", NO_GROUPS)
    assert roles == {VIEW}
    assert policy.may_view(UNCONFIGURED, roles, "C0ANY").allowed
    for action in ("restart", "stop", "update"):
        refused = policy.may_request(UNCONFIGURED, roles | {OPERATE}, action, "C0ANY")
        assert not refused.allowed
        assert "BOT_CONFIG" in refused.reason and "roles.operator" in refused.reason
        assert "config.example.yml" in refused.reason
    assert not policy.actions_allowed_in(UNCONFIGURED, "C0ANY")
    assert policy.approval_mode(UNCONFIGURED, "restart", TunnelSession(id="ts_1")) == "two-person"


def test_safe_default_without_a_key_says_how_to_add_one():
    config = load_config(None, source="BOT_CONFIG", env={})
    refused = policy.may_view(config, frozenset({VIEW}), "C0ANY")
    assert not refused.allowed and "NGROK_API_KEY" in refused.reason


@pytest.mark.parametrize(
    ("action", "session", "mode"),
    [
        ("stop", TunnelSession(id="ts_1"), "two-person"),
        ("restart", TunnelSession(id="ts_1", metadata="team=web env=PROD"), "two-person"),
        ("update", TunnelSession(id="ts_1", metadata="env=prod"), "two-person"),
        ("restart", TunnelSession(id="ts_1", region="EU"), "two-person"),
        ("update", TunnelSession(id="ts_1", region="eu"), "self"),
        ("restart", TunnelSession(id="ts_1", metadata="env=staging", region="us"), "self"),
        ("update", TunnelSession(id="ts_1"), "self"),
    ],
)
def test_approval_mode_follows_the_first_matching_rule(action, session, mode):
    assert policy.approval_mode(CONFIG, action, session) == mode


def test_strictest_mode_for_several_sessions():
    calm = TunnelSession(id="ts_1", region="us")
    prod = TunnelSession(id="ts_2", metadata="env=prod")
    assert policy.approval_mode_for_request(CONFIG, "restart", [calm]) == "self"
    assert policy.approval_mode_for_request(CONFIG, "restart", [calm, prod]) == "two-person"


def test_unknown_action_is_a_programming_error():
    with pytest.raises(ValueError, match="reboot"):
        policy.may_request(CONFIG, frozenset({OPERATE}), "reboot", "C0INCIDENTS")
    with pytest.raises(ValueError, match="reboot"):
        policy.approval_mode(CONFIG, "reboot", TunnelSession(id="ts_1"))


def approve(roles, requester, clicker, mode, channel="C0INCIDENTS", action="stop"):
    return policy.may_approve(
        CONFIG, frozenset(roles), requester, clicker, action, channel, mode=mode
    )


def test_two_person_approval_by_another_approver():
    decision = approve({VIEW, APPROVE}, "U0OPS", "U0SRE", "two-person")
    assert decision.allowed


def test_requester_can_never_approve_their_own_two_person_request():
    decision = approve({VIEW, OPERATE, APPROVE}, "U0BOTH", "U0BOTH", "two-person")
    assert not decision.allowed
    assert "someone else" in decision.reason


def test_two_person_approval_needs_the_approver_role():
    decision = approve({VIEW, OPERATE}, "U0OPS", "U0OTHEROPS", "two-person")
    assert not decision.allowed and "roles.approver" in decision.reason


def test_approver_role_removed_between_request_and_click_counts():
    directory = GroupDirectory({"S0SRELEADS": {"U0CAROL"}})
    at_request = policy.roles_of(CONFIG, "U0CAROL", directory)
    assert approve(at_request, "U0OPS", "U0CAROL", "two-person").allowed

    directory.memberships["S0SRELEADS"] = set()  # Carol leaves the group before clicking
    at_click = policy.roles_of(CONFIG, "U0CAROL", directory)
    decision = approve(at_click, "U0OPS", "U0CAROL", "two-person")
    assert not decision.allowed and "roles.approver" in decision.reason


def test_self_mode_is_confirmed_by_the_requester_who_is_still_an_operator():
    assert approve({VIEW, OPERATE}, "U0OPS", "U0OPS", "self", action="restart").allowed

    demoted = approve({VIEW}, "U0OPS", "U0OPS", "self", action="restart")
    assert not demoted.allowed and "roles.operator" in demoted.reason


def test_non_requester_clicking_a_self_mode_prompt_is_refused():
    for roles in ({VIEW, OPERATE}, {VIEW, OPERATE, APPROVE}):
        decision = approve(roles, "U0OPS", "U0SOMEONE", "self", action="update")
        assert not decision.allowed
        assert "Only the person who asked" in decision.reason


def test_empty_ids_never_match():
    assert not approve({VIEW, OPERATE}, "", "", "self").allowed
    assert not approve({VIEW, APPROVE}, "U0OPS", "", "two-person").allowed


def test_approval_refused_when_the_channel_no_longer_allows_actions():
    decision = approve({VIEW, APPROVE}, "U0OPS", "U0SRE", "two-person", channel="C0LOOK")
    assert not decision.allowed and "C0LOOK" in decision.reason


def test_approval_refused_without_a_config():
    decision = policy.may_approve(
        UNCONFIGURED, frozenset({VIEW}), "U0A", "U0A", "stop", "C0ANY", mode="self"
    )
    assert not decision.allowed and "BOT_CONFIG" in decision.reason


def test_unknown_mode_is_a_programming_error():
    with pytest.raises(ValueError, match="three-person"):
        approve({APPROVE}, "U0A", "U0B", "three-person")


def test_an_update_needs_what_its_restart_needs():
    eu = TunnelSession(id="ts_1", region="eu")  # update: self; restart in eu: two-person
    assert policy.approval_mode(CONFIG, "update", eu) == "self"
    assert policy.approval_mode_for_request(CONFIG, "update", [eu]) == "two-person"


def test_audit_is_for_operators_and_approvers_only():
    assert policy.may_read_audit(frozenset({OPERATE})).allowed
    assert not policy.may_read_audit(frozenset({"viewer"})).allowed
    assert "roles.operator" in policy.may_read_audit(frozenset()).reason
