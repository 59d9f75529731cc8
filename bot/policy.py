"""Who may do what, where; and when a second person must approve.

Pure decisions over a BotConfig. Roles are computed per click, not stored in approval
tokens: a role removed between the request and the click must count, so the caller calls
`roles_of` again at click time and passes the fresh roles to `may_approve`.

Role implications: operator and approver each imply viewer. An approver does NOT imply
operator: approving someone else's request is a different right from starting one, and a
team may want reviewers who cannot act on their own.

Approval mode: the first rule for the action whose match accepts the session wins; with no
matching rule a configured bot uses "self" (the requester confirms). The built-in default
(no BOT_CONFIG) says "two-person", the stricter answer, though nobody may act there anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from bot.ngrok.models import ACTIONS, Action, TunnelSession
from bot.settings.bot_config import (
    APPROVAL_MODES,
    EVERYONE,
    ROLE_NAMES,
    Account,
    BotConfig,
)

VIEW, OPERATE, APPROVE = ROLE_NAMES
ApprovalMode = Literal["self", "two-person"]

_IMPLIES = {OPERATE: VIEW, APPROVE: VIEW}
_NO_CONFIG = (
    "Actions are turned off because the bot has no BOT_CONFIG: ask an admin to set one that "
    "lists you under roles.operator (see config.example.yml)."
)


@dataclass(frozen=True)
class Decision:
    """`reason` is one sentence for Slack; when refused it says how to get the right."""

    allowed: bool
    reason: str


def roles_of(
    config: BotConfig, user_id: str, groups_of_user: Callable[[str], frozenset[str]]
) -> frozenset[str]:
    """The user's roles, through "*", their own id or one of their user groups.
    `groups_of_user` (a Slack call behind a cache) is only called when a role the user does
    not already hold directly is granted to a group."""
    held = {
        role for role, members in config.roles.items() if EVERYONE in members or user_id in members
    }
    via_groups = {
        role: {m for m in members if m.startswith("S")}
        for role, members in config.roles.items()
        if role not in held
    }
    if any(via_groups.values()):
        groups = groups_of_user(user_id)
        held |= {role for role, group_ids in via_groups.items() if group_ids & groups}
    held |= {_IMPLIES[role] for role in held if role in _IMPLIES}
    return frozenset(held)


def account_for_channel(config: BotConfig, channel_id: str) -> Account | None:
    """The channel's bound account, else the default account, else None."""
    binding = config.channels.get(channel_id)
    name = binding.account if binding is not None else config.default_account
    return config.accounts.get(name) if name is not None else None


def actions_allowed_in(config: BotConfig, channel_id: str) -> bool:
    """Whether restart/stop/update may run in this channel at all (roles aside)."""
    if not config.configured:
        return False
    binding = config.channels.get(channel_id)
    return binding.actions_allowed if binding is not None else config.actions_in_unlisted_channels


def may_view(config: BotConfig, roles: frozenset[str], channel_id: str) -> Decision:
    if VIEW not in roles:
        return Decision(
            False,
            "You may not look at ngrok sessions: ask an admin to add your Slack user id or "
            "one of your user groups to roles.viewer in BOT_CONFIG.",
        )
    refused = _refuse_without_account(config, channel_id)
    return refused or Decision(True, "You are a viewer.")


def may_request(config: BotConfig, roles: frozenset[str], action: str, channel_id: str) -> Decision:
    """Whether this user may ask for `action` here; the approval comes later."""
    _check_action(action)
    if not config.configured:
        return Decision(False, _NO_CONFIG)
    operator = OPERATE in roles
    channel_ok = actions_allowed_in(config, channel_id)
    if not operator and not channel_ok:
        return Decision(
            False,
            f"You may not {action} sessions here: ask an admin to add you to roles.operator and "
            f"to set actions: true for this channel ({channel_id}) under channels in BOT_CONFIG.",
        )
    if not operator:
        return Decision(False, _not_operator(action))
    if not channel_ok:
        return Decision(False, _channel_closed(channel_id))
    refused = _refuse_without_account(config, channel_id)
    return refused or Decision(
        True, f"You are an operator and actions are allowed in {channel_id}."
    )


def approval_mode(config: BotConfig, action: str, session: TunnelSession) -> ApprovalMode:
    """First matching rule wins; see the module docstring for the fallbacks."""
    _check_action(action)
    if not config.configured:
        return "two-person"
    for rule in config.rules:
        if rule.action == action and rule.match.matches(session):
            return rule.approval
    return "self"


def approval_mode_for_request(
    config: BotConfig, action: Action, sessions: Iterable[TunnelSession]
) -> ApprovalMode:
    """For one request covering one or several sessions: two-person if any of them needs it.
    An update is completed by a restart the bot sends, so it needs what a restart needs too."""
    actions: tuple[Action, ...] = ("update", "restart") if action == "update" else (action,)
    modes = {approval_mode(config, a, s) for s in sessions for a in actions}
    if "two-person" in modes or not config.configured:
        return "two-person"
    return "self"


def accounts_visible_to(config: BotConfig, roles: frozenset[str]) -> list[str]:
    """The accounts a user may see outside a channel (the App Home): an account is visible
    to a user who may view in at least one channel bound to it, and the default account
    (which every unlisted channel sees) to every viewer. An account bound to no channel and
    not the default is seen nowhere in Slack, so not on the Home tab either."""
    visible = set()
    if config.default_account in config.accounts and VIEW in roles:
        visible.add(config.default_account)
    for channel_id, binding in config.channels.items():
        if binding.account in config.accounts and may_view(config, roles, channel_id).allowed:
            visible.add(binding.account)
    return sorted(a for a in visible if a is not None)


def may_approve_requests(roles: frozenset[str]) -> bool:
    """Whether to offer someone other people's two-person requests (checked again at the
    click by `may_approve`, as in channels)."""
    return APPROVE in roles


def may_read_audit(roles: frozenset[str]) -> Decision:
    """The audit log names people and agents, so it is for those who act or approve."""
    if roles & {OPERATE, APPROVE}:
        return Decision(True, "You are an operator or an approver.")
    return Decision(
        False,
        "Only operators and approvers can read the audit log: ask an admin to add you "
        "to roles.operator or roles.approver in BOT_CONFIG.",
    )


def allowed_verbs(config: BotConfig, roles: frozenset[str], channel_id: str) -> set[str]:
    """The verbs this user may run in this channel, so help shows only what will work."""
    verbs = {"help"}
    if may_view(config, roles, channel_id).allowed:
        verbs |= {"sessions", "session"}
    verbs |= {a for a in ACTIONS if may_request(config, roles, a, channel_id).allowed}
    if may_read_audit(roles).allowed:
        verbs.add("audit")
    return verbs


def actions_for(config: BotConfig, roles: frozenset[str], channel_id: str) -> tuple[Action, ...]:
    """The actions this user may ask for in this channel, so menus offer only those."""
    return tuple(a for a in ACTIONS if may_request(config, roles, a, channel_id).allowed)


def rights_note(config: BotConfig, roles: frozenset[str], channel_id: str) -> str:
    """One sentence on how to get the right to act here; empty when every action is open.
    Shown once under a list or a detail view instead of menus that could only be refused."""
    if len(actions_for(config, roles, channel_id)) == len(ACTIONS):
        return ""
    if not config.configured:
        return _NO_CONFIG
    operator = OPERATE in roles
    channel_ok = actions_allowed_in(config, channel_id)
    if not operator and not channel_ok:
        return (
            "You can look but not act here: ask an admin to add you to roles.operator and to "
            f"set actions: true for this channel ({channel_id}) in BOT_CONFIG."
        )
    if not operator:
        return (
            "You can look but not act: ask an admin to add your Slack user id or one of your "
            "user groups to roles.operator in BOT_CONFIG."
        )
    if not channel_ok:
        return _channel_closed(channel_id)
    refused = _refuse_without_account(config, channel_id)
    return refused.reason if refused else ""


def may_approve(
    config: BotConfig,
    roles: frozenset[str],
    claims_requester: str,
    approver_id: str,
    action: str,
    channel_id: str,
    *,
    mode: ApprovalMode,
    requester_roles: frozenset[str] | None = None,
) -> Decision:
    """Judge a click on an approval button. `roles` are the clicker's roles now, not when
    the request was made; `claims_requester` comes from the signed token. Self mode: only
    the requester, still an operator. Two-person: anyone but the requester who holds
    approver, and, when `requester_roles` (the requester's roles now) are given, only while
    the requester may still ask for this action here: removing a role stops pending
    approvals."""
    _check_action(action)
    if mode not in APPROVAL_MODES:
        raise ValueError(f"unknown approval mode {mode!r}")
    if not config.configured:
        return Decision(False, _NO_CONFIG)
    if not actions_allowed_in(config, channel_id):
        return Decision(False, _channel_closed(channel_id))
    refused = _refuse_without_account(config, channel_id)
    if refused:
        return refused
    is_requester = bool(approver_id) and approver_id == claims_requester
    if mode == "self":
        if not is_requester:
            return Decision(False, f"Only the person who asked for this {action} can confirm it.")
        if OPERATE not in roles:
            return Decision(False, f"You are no longer an operator. {_not_operator(action)}")
        return Decision(True, f"The requester confirmed their own {action}.")
    if is_requester or not approver_id:
        return Decision(
            False,
            f"You asked for this {action}, so someone else must approve it: ask a colleague "
            "who holds the approver role.",
        )
    if APPROVE not in roles:
        return Decision(
            False,
            f"Only approvers can approve this {action}: ask an admin to add you to "
            "roles.approver in BOT_CONFIG.",
        )
    if requester_roles is not None:
        still = may_request(config, requester_roles, action, channel_id)
        if not still.allowed:
            return Decision(False, _requester_lost_right(claims_requester, action))
    return Decision(True, f"An approver other than the requester approved this {action}.")


def _refuse_without_account(config: BotConfig, channel_id: str) -> Decision | None:
    if account_for_channel(config, channel_id) is not None:
        return None
    if not config.accounts:
        return Decision(
            False,
            "The bot has no ngrok API key: ask an admin to set NGROK_API_KEY or to add "
            "accounts to BOT_CONFIG.",
        )
    return Decision(
        False,
        f"This channel ({channel_id}) has no ngrok account: ask an admin to bind it under "
        "channels in BOT_CONFIG or to set default_account.",
    )


def _requester_lost_right(requester: str, action: str) -> str:
    return (
        f"This {action} was not run because the person who asked for it ({requester}) is no "
        "longer an operator here; they can ask again once an admin gives the role back."
    )


def _not_operator(action: str) -> str:
    return (
        f"You may not {action} sessions: ask an admin to add your Slack user id or one of "
        "your user groups to roles.operator in BOT_CONFIG."
    )


def _channel_closed(channel_id: str) -> str:
    return (
        f"Actions are not allowed in this channel ({channel_id}): ask an admin to set "
        "actions: true for it under channels in BOT_CONFIG, or use a channel that allows them."
    )


def _check_action(action: str) -> None:
    """An unknown action is a bug in the caller, not a user's mistake."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
