"""BOT_CONFIG: who may do what, where, and with which ngrok account.

The YAML is walked with bot/yaml_lines.YamlReader instead of being loaded straight into
dicts, so every problem can name its line. All problems are collected and raised together,
because fixing a config one error per restart is miserable. API keys never appear in the
YAML: an account names the environment variable that holds its key, and no message or repr
shows a key. The caller (bot/settings.py) reads the file and the environment and passes them
in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import yaml

from bot.ngrok.hosts import DEFAULT_HOST_KEYS
from bot.ngrok.models import ACTIONS, Action, as_action
from bot.settings.awareness import AlertsConfig, DigestConfig, parse_alerts, parse_digest
from bot.settings.match import MATCH_KEYS as MATCH_KEYS
from bot.settings.match import MatchRule, parse_match
from bot.settings.yaml_lines import YamlReader, join_path, show
from bot.slack.ids import CONVERSATION_ID_RE, GROUP_ID_RE, USER_ID_RE

ROLE_NAMES = ("viewer", "operator", "approver")
APPROVAL_MODES = ("self", "two-person")
EVERYONE = "*"
DEFAULT_ACCOUNT_NAME = "default"
DEFAULT_APPROVAL_TTL_SECONDS = 600
MIN_APPROVAL_TTL_SECONDS = 10
MAX_APPROVAL_TTL_SECONDS = 24 * 3600

TOP_LEVEL_KEYS = (
    "roles",
    "accounts",
    "default_account",
    "channels",
    "actions_in_other_channels",
    "rules",
    "approval_ttl",
    "audit_channel",
    "alerts",
    "digest",
    "host_keys",
)
ACCOUNT_KEYS = ("api_key_env", "api_url", "alerts")
CHANNEL_KEYS = ("account", "actions")
RULE_KEYS = ("action", "approval", "match")

_HOST_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_URL = re.compile(r"https?://[^\s/@]+(/\S*)?")
_MIN_SECRET_LENGTH = 8  # shorter "secrets" would redact ordinary words from messages


@dataclass(frozen=True)
class Account:
    """A named ngrok account; the key comes from the environment variable `api_key_env`."""

    name: str
    api_key_env: str
    api_key: str = field(repr=False)
    api_url: str | None = None  # None: the bot's default API URL


@dataclass(frozen=True)
class ActionRule:
    action: Action
    approval: Literal["self", "two-person"]
    match: MatchRule = field(default_factory=MatchRule)


@dataclass(frozen=True)
class ChannelBinding:
    channel_id: str
    account: str
    actions_allowed: bool


@dataclass(frozen=True)
class BotConfig:
    roles: Mapping[str, frozenset[str]]  # role -> "*", user ids (U…/W…), group ids (S…)
    accounts: Mapping[str, Account]
    default_account: str | None
    channels: Mapping[str, ChannelBinding]
    actions_in_unlisted_channels: bool
    rules: tuple[ActionRule, ...]
    approval_ttl_seconds: int
    audit_channel: str | None
    configured: bool  # False for the built-in safe default (no BOT_CONFIG)
    alerts: Mapping[str, AlertsConfig] = field(default_factory=lambda: MappingProxyType({}))
    digest: DigestConfig | None = None  # the daily digest (bot/settings/awareness.py)
    # Metadata keys that name an agent's host, tried in order (JSON keys or key=value pairs).
    host_keys: tuple[str, ...] = DEFAULT_HOST_KEYS


class ConfigError(Exception):
    """Every problem of one config, each "<source>:<line>: <key>: <what is wrong>"."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        count = len(self.problems)
        heading = f"the bot configuration has {count} problem{'s' if count != 1 else ''}:"
        return "\n".join([heading, *(f"  {problem}" for problem in self.problems)])


def load_config(
    text: str | None,
    *,
    source: str,
    env: Mapping[str, str],
    default_api_key_env: str = "NGROK_API_KEY",
) -> BotConfig:
    """YAML text to a BotConfig, or ConfigError listing every problem. `text=None` (no
    BOT_CONFIG) gives the safe default: everyone may view, nobody may act."""
    if text is None:
        return _safe_default(env, default_api_key_env)
    reader = YamlReader(source)
    secrets = {env.get(default_api_key_env, "")}
    try:
        root = reader.compose(text)
        config = _build(reader, root, env, default_api_key_env, secrets) if root else None
        if root is None and not reader.problems:
            reader.problem_at(1, "", "the configuration is empty; see config.example.yml")
    except yaml.YAMLError as exc:  # only syntax errors escape the reader
        reader.syntax_problem(exc)
        config = None
    if reader.problems or config is None:
        raise ConfigError(_redact(reader.sorted_problems(), secrets))
    return config


def _safe_default(env: Mapping[str, str], key_env: str) -> BotConfig:
    key = env.get(key_env, "").strip()
    accounts = {DEFAULT_ACCOUNT_NAME: Account(DEFAULT_ACCOUNT_NAME, key_env, key)} if key else {}
    return BotConfig(
        roles=_frozen(
            {"viewer": frozenset({EVERYONE}), "operator": frozenset(), "approver": frozenset()}
        ),
        accounts=_frozen(accounts),
        default_account=DEFAULT_ACCOUNT_NAME if key else None,
        channels=_frozen({}),
        actions_in_unlisted_channels=False,
        rules=(),
        approval_ttl_seconds=DEFAULT_APPROVAL_TTL_SECONDS,
        audit_channel=None,
        configured=False,
    )


def _build(
    reader: YamlReader,
    root: yaml.Node,
    env: Mapping[str, str],
    key_env: str,
    secrets: set[str],
) -> BotConfig:
    top = reader.mapping(root, "", TOP_LEVEL_KEYS) or {}
    node = {key: value for key, (_, value) in top.items()}
    roles = _roles(reader, node.get("roles"))
    account_alerts: dict[str, AlertsConfig | None] = {}
    if "accounts" in top:
        accounts, declared = _accounts(reader, node["accounts"], env, secrets, account_alerts)
    else:
        accounts, declared = _implicit_account(reader, env, key_env)
    default_account = _default_account(reader, node.get("default_account"), declared)
    channels = _channels(reader, node.get("channels"), declared, default_account)
    in_others = reader.flag(node.get("actions_in_other_channels"), "actions_in_other_channels")
    ttl = _duration(reader, node.get("approval_ttl"), "approval_ttl")
    audit = node.get("audit_channel")
    audit_channel = reader.text(audit, "audit_channel") if audit is not None else None
    if (
        audit is not None
        and audit_channel is not None
        and not re.fullmatch(r"[CG][A-Z0-9]{2,}", audit_channel)
    ):
        reader.problem(
            audit, "audit_channel", f"{show(audit_channel)} is not a Slack channel id (C… or G…)"
        )
    return BotConfig(
        roles=_frozen(roles),
        accounts=_frozen(accounts),
        default_account=default_account,
        channels=_frozen(channels),
        actions_in_unlisted_channels=not channels if in_others is None else in_others,
        rules=_rules(reader, node.get("rules")),
        approval_ttl_seconds=DEFAULT_APPROVAL_TTL_SECONDS if ttl is None else ttl,
        audit_channel=audit_channel,
        configured=True,
        alerts=_frozen(_alerts(reader, node.get("alerts"), accounts, account_alerts)),
        digest=parse_digest(reader, node["digest"], "digest") if "digest" in node else None,
        host_keys=_host_keys(reader, node.get("host_keys")),
    )


def _alerts(
    reader: YamlReader,
    node: yaml.Node | None,
    accounts: Mapping[str, Account],
    per_account: Mapping[str, AlertsConfig | None],
) -> dict[str, AlertsConfig]:
    """Each account's alerts: its own `alerts:` section, else the top-level one."""
    default = parse_alerts(reader, node, "alerts") if node is not None else None
    chosen = {name: per_account.get(name, default) for name in accounts}
    return {name: alerts for name, alerts in chosen.items() if alerts is not None}


def _host_keys(reader: YamlReader, node: yaml.Node | None) -> tuple[str, ...]:
    """Extra metadata keys that name the host, tried before the built-in ones."""
    if node is None:
        return DEFAULT_HOST_KEYS
    keys: list[str] = []
    for text, item_node, item_path in reader.texts(node, "host_keys"):
        if text and not _HOST_KEY.fullmatch(text):
            reader.problem(
                item_node, item_path, f"{show(text)} is not a metadata key (letters, digits, _ . -)"
            )
        elif text:
            keys.append(text)
    return tuple(dict.fromkeys([*keys, *DEFAULT_HOST_KEYS]))


def _roles(reader: YamlReader, node: yaml.Node | None) -> dict[str, frozenset[str]]:
    """A role left out means: viewer -> everyone, operator and approver -> nobody."""
    roles = {"viewer": frozenset({EVERYONE}), "operator": frozenset(), "approver": frozenset()}
    for role, (_, members_node) in (
        reader.mapping(node, "roles", ROLE_NAMES, "role") or {}
    ).items():
        members = set()
        for member, member_node, path in reader.texts(members_node, f"roles.{role}"):
            if member == EVERYONE or USER_ID_RE.fullmatch(member) or GROUP_ID_RE.fullmatch(member):
                members.add(member)
            else:
                reader.problem(
                    member_node,
                    path,
                    f"{show(member)} is not a Slack user id (U… or W…) or user group id (S…)",
                )
        roles[role] = frozenset(members)
    return roles


def _accounts(
    reader: YamlReader,
    node: yaml.Node,
    env: Mapping[str, str],
    secrets: set[str],
    alerts: dict[str, AlertsConfig | None],
) -> tuple[dict[str, Account], set[str]]:
    """Returns the usable accounts and every declared name (so that a reference to a
    broken account is not reported a second time as unknown)."""
    accounts: dict[str, Account] = {}
    entries = reader.mapping(node, "accounts") or {}
    for name, (key_node, value_node) in entries.items():
        path = join_path("accounts", name)
        if not _ACCOUNT_NAME.fullmatch(name):
            reader.problem(
                key_node, path, "account names may use only letters, digits, '_', '-' and '.'"
            )
        fields = reader.mapping(value_node, path, ACCOUNT_KEYS)
        if fields is None:
            continue
        if "api_key_env" not in fields:
            reader.problem(
                value_node,
                path,
                "missing key 'api_key_env' (the environment variable with the API key)",
            )
            continue
        if "alerts" in fields:
            alerts[name] = parse_alerts(reader, fields["alerts"][1], f"{path}.alerts")
        env_node = fields["api_key_env"][1]
        env_name = reader.text(env_node, f"{path}.api_key_env")
        api_url = _api_url(reader, fields, path)
        if env_name is None:
            continue
        if not _ENV_NAME.fullmatch(env_name):
            secrets.add(env_name)  # someone may have pasted the key itself here
            reader.problem(
                env_node,
                f"{path}.api_key_env",
                "must name an environment variable (such as NGROK_API_KEY_PROD) that holds "
                "the API key, never the key itself",
            )
            continue
        key = env.get(env_name, "")
        secrets.add(key)
        if not key.strip():
            state = "is empty" if env_name in env else "is not set"
            reader.problem(
                env_node, f"{path}.api_key_env", f"the environment variable {env_name} {state}"
            )
            continue
        accounts[name] = Account(name, env_name, key.strip(), api_url)
    return accounts, set(entries)


def _implicit_account(
    reader: YamlReader, env: Mapping[str, str], key_env: str
) -> tuple[dict[str, Account], set[str]]:
    key = env.get(key_env, "").strip()
    if key:
        return {DEFAULT_ACCOUNT_NAME: Account(DEFAULT_ACCOUNT_NAME, key_env, key)}, {
            DEFAULT_ACCOUNT_NAME
        }
    reader.problem_at(
        1,
        "accounts",
        f"there is no accounts section and the environment variable {key_env} is not set",
    )
    return {}, {DEFAULT_ACCOUNT_NAME}


def _api_url(reader: YamlReader, fields: dict[str, Any], path: str) -> str | None:
    if "api_url" not in fields:
        return None
    node = fields["api_url"][1]
    url = reader.text(node, f"{path}.api_url")
    if url is not None and not _URL.fullmatch(url):
        # The value is not echoed: a URL may carry credentials.
        reader.problem(
            node,
            f"{path}.api_url",
            "must be an http(s) URL without credentials, such as https://api.ngrok.com",
        )
        return None
    return url.rstrip("/") if url else None


def _default_account(reader: YamlReader, node: yaml.Node | None, declared: set[str]) -> str | None:
    """Explicit, or the only account there is; with several accounts and none named,
    unlisted channels have no account."""
    if node is None:
        return next(iter(declared)) if len(declared) == 1 else None
    name = reader.text(node, "default_account")
    if name is not None and name not in declared:
        reader.problem(node, "default_account", _unknown_account(name, declared))
    return name


def _channels(
    reader: YamlReader, node: yaml.Node | None, declared: set[str], default_account: str | None
) -> dict[str, ChannelBinding]:
    channels: dict[str, ChannelBinding] = {}
    for channel_id, (key_node, value_node) in (reader.mapping(node, "channels") or {}).items():
        path = join_path("channels", channel_id)
        if not CONVERSATION_ID_RE.fullmatch(channel_id):
            reader.problem(
                key_node, path, f"{show(channel_id)} is not a Slack channel id (C…, G… or D…)"
            )
        fields = reader.mapping(value_node, path, CHANNEL_KEYS)
        if fields is None:
            continue
        account = default_account
        if "account" in fields:
            account_node = fields["account"][1]
            account = reader.text(account_node, f"{path}.account")
            if account is not None and account not in declared:
                reader.problem(account_node, f"{path}.account", _unknown_account(account, declared))
        elif default_account is None:
            reader.problem(value_node, path, "missing key 'account' (there is no default_account)")
        actions = (
            reader.flag(fields["actions"][1], f"{path}.actions") if "actions" in fields else None
        )
        if account is not None:
            channels[channel_id] = ChannelBinding(channel_id, account, bool(actions))
    return channels


def _rules(reader: YamlReader, node: yaml.Node | None) -> tuple[ActionRule, ...]:
    """First matching rule wins, so a rule after a catch-all for the same action would
    never apply: that is reported instead of silently ignored."""
    rules: list[ActionRule] = []
    catch_all: dict[str, str] = {}
    for index, item in enumerate(reader.sequence(node, "rules")):
        path = f"rules[{index}]"
        fields = reader.mapping(item, path, RULE_KEYS)
        if fields is None:
            continue
        for required in ("action", "approval"):
            if required not in fields:
                reader.problem(item, path, f"missing key '{required}'")
        actions = _rule_actions(reader, fields, path)
        approval = None
        if "approval" in fields:
            approval_node = fields["approval"][1]
            approval = reader.choice(
                approval_node, f"{path}.approval", APPROVAL_MODES, "an approval mode"
            )
        match = (
            parse_match(reader, fields["match"][1], f"{path}.match")
            if "match" in fields
            else MatchRule()
        )
        for action, action_node in actions:
            if action in catch_all:
                reader.problem(
                    action_node,
                    f"{path}.action",
                    f"never applies to {action}: {catch_all[action]} already covers every "
                    f"{action}; put the more specific rule first",
                )
            elif match.is_catch_all:
                catch_all[action] = path
            if approval == "self":
                rules.append(ActionRule(action, "self", match))
            elif approval == "two-person":
                rules.append(ActionRule(action, "two-person", match))
    return tuple(rules)


def _rule_actions(
    reader: YamlReader, fields: dict[str, Any], path: str
) -> list[tuple[Action, yaml.Node]]:
    if "action" not in fields:
        return []
    node = fields["action"][1]
    items = reader.texts(node, f"{path}.action")
    if reader.is_null(node) or (isinstance(node, yaml.SequenceNode) and not node.value):
        reader.problem(node, f"{path}.action", f"must name at least one of: {', '.join(ACTIONS)}")
    actions = []
    for _, item_node, item_path in items:
        action = as_action(reader.choice(item_node, item_path, ACTIONS, "an action") or "")
        if action is not None:
            actions.append((action, item_node))
    return actions


def _duration(reader: YamlReader, node: yaml.Node | None, path: str) -> int | None:
    """Plain seconds (600) or a duration such as 90s, 10m, 1h30m."""
    if node is None:
        return None
    value = reader.scalar(node)
    seconds = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and value.strip():
        found = _DURATION.fullmatch(value.strip())
        if found:
            hours, minutes, secs = (int(part or 0) for part in found.groups())
            seconds = hours * 3600 + minutes * 60 + secs
    if seconds is None:
        reader.problem(
            node, path, f"{show(value)} is not a duration such as 600, 90s, 10m or 1h30m"
        )
        return None
    if not MIN_APPROVAL_TTL_SECONDS <= seconds <= MAX_APPROVAL_TTL_SECONDS:
        reader.problem(node, path, "must be between 10 seconds and 24 hours")
        return None
    return seconds


def _unknown_account(name: str, declared: set[str]) -> str:
    known = ", ".join(sorted(declared)) or "none"
    return f"{show(name)} is not one of the accounts ({known})"


def _frozen(mapping: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


def _redact(problems: list[str], secrets: set[str]) -> list[str]:
    """A last guard: whatever path a key value took into a message, it leaves here."""
    for secret in sorted((s.strip() for s in secrets), key=len, reverse=True):
        if len(secret) >= _MIN_SECRET_LENGTH:
            problems = [problem.replace(secret, "[redacted]") for problem in problems]
    return problems
