"""Finding 5: a two-person request only runs while its requester may still ask for it."""

from __future__ import annotations

from bot import policy
from bot.policy import APPROVE, OPERATE, VIEW
from tests.test_policy import CONFIG


def approve(requester_roles: set[str] | None):
    roles = None if requester_roles is None else frozenset(requester_roles)
    return policy.may_approve(
        CONFIG, frozenset({VIEW, APPROVE}), "U0OPS", "U0SRE", "stop", "C0INCIDENTS",
        mode="two-person", requester_roles=roles,
    )  # fmt: skip


def test_an_approval_runs_while_the_requester_is_still_an_operator():
    assert approve({VIEW, OPERATE}).allowed


def test_an_approval_is_refused_once_the_requester_lost_the_operator_role():
    decision = approve({VIEW})
    assert not decision.allowed
    assert "U0OPS" in decision.reason and "no longer an operator" in decision.reason


def test_without_the_requesters_roles_the_old_judgement_stands():
    assert approve(None).allowed
