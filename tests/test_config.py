"""BOT_CONFIG loading: the example and the minimal config load; every kind of mistake is
reported as file:line: key: sentence, all at once; no API key ever shows."""

import dataclasses
import re
from pathlib import Path

import pytest

from bot.ngrok.models import TunnelSession
from bot.settings import bot_config as cfg
from bot.settings.bot_config import ConfigError, MatchRule, load_config

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config.example.yml"
PROD_KEY = "2prodKEYvalue_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
STAGING_KEY = "2stagingKEYvalue_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
DEFAULT_KEY = "2defaultKEYvalue_cccccccccccccccccccccccccccccccccc"
ENV = {
    "NGROK_API_KEY_PROD": PROD_KEY,
    "NGROK_API_KEY_STAGING": STAGING_KEY,
    "NGROK_API_KEY": DEFAULT_KEY,
}
ALL_KEYS = (PROD_KEY, STAGING_KEY, DEFAULT_KEY)

# The smallest useful config, as the README shows it: one operator, the key in NGROK_API_KEY.
MINIMAL = """\
roles:
  operator: [U012ABCDEF]
"""


def load(text, env=ENV):
    return load_config(text, source="config.yml", env=env)


def problems_of(text, env=ENV):
    with pytest.raises(ConfigError) as caught:
        load(text, env)
    return caught.value.problems


def test_example_file_loads_with_its_environment_variables():
    config = load_config(EXAMPLE.read_text(), source=str(EXAMPLE), env=ENV)
    assert config.configured
    assert config.roles["operator"] == {"U012ABCDEF", "S0OPSTEAM"}
    assert config.roles["approver"] == {"U0SRE1", "S0SRELEADS"}
    assert config.roles["viewer"] == {"*"}
    assert config.accounts["prod"].api_key == PROD_KEY
    assert config.accounts["prod"].api_url is None
    assert config.accounts["staging"].api_key == STAGING_KEY
    assert config.accounts["staging"].api_url == "https://api.ngrok.com"
    assert config.default_account == "staging"
    assert config.channels["C0INCIDENTS"].account == "prod"
    assert config.channels["C0INCIDENTS"].actions_allowed is True
    assert config.actions_in_unlisted_channels is False
    assert [(r.action, r.approval) for r in config.rules][:3] == [
        ("stop", "two-person"),
        ("restart", "two-person"),
        ("update", "two-person"),
    ]
    assert config.rules[1].match.metadata_contains == ("env=prod", '"env":"prod"')
    assert config.rules[-1] == cfg.ActionRule("update", "self", MatchRule())
    assert config.approval_ttl_seconds == 600
    assert config.audit_channel == "C0AUDIT"


@pytest.mark.parametrize(
    "keys",
    [
        cfg.TOP_LEVEL_KEYS,
        cfg.ROLE_NAMES,
        cfg.ACCOUNT_KEYS,
        cfg.CHANNEL_KEYS,
        cfg.RULE_KEYS,
        cfg.MATCH_KEYS,
    ],
)
def test_example_file_shows_and_documents_every_key(keys):
    text = EXAMPLE.read_text()
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    for key in keys:
        assert re.search(rf"[\s{{,-]{re.escape(key)}:", text), f"{key} is not shown"
        assert key in comments, f"{key} is not explained in a comment"


def test_minimal_config_uses_the_default_key_and_allows_actions_everywhere():
    config = load(MINIMAL, env={"NGROK_API_KEY": DEFAULT_KEY})
    assert config.roles["operator"] == {"U012ABCDEF"}
    assert config.roles["viewer"] == {"*"}
    assert config.roles["approver"] == frozenset()
    assert config.accounts["default"].api_key == DEFAULT_KEY
    assert config.accounts["default"].api_key_env == "NGROK_API_KEY"
    assert config.default_account == "default"
    assert config.actions_in_unlisted_channels is True
    assert config.rules == ()
    assert config.approval_ttl_seconds == cfg.DEFAULT_APPROVAL_TTL_SECONDS


def test_listing_channels_turns_them_into_the_allow_list():
    config = load("channels:\n  C0OPS: {actions: true}\n  C0LOOK: {}\n")
    assert config.actions_in_unlisted_channels is False
    assert config.channels["C0OPS"] == cfg.ChannelBinding("C0OPS", "default", True)
    assert config.channels["C0LOOK"].actions_allowed is False


def test_no_config_is_the_safe_default():
    config = load_config(None, source="BOT_CONFIG", env={"NGROK_API_KEY": DEFAULT_KEY})
    assert config.configured is False
    assert config.roles["viewer"] == {"*"}
    assert not config.roles["operator"] and not config.roles["approver"]
    assert config.accounts["default"].api_key == DEFAULT_KEY
    assert config.default_account == "default"
    assert config.actions_in_unlisted_channels is False


def test_no_config_and_no_key_has_no_account():
    config = load_config(None, source="BOT_CONFIG", env={})
    assert dict(config.accounts) == {}
    assert config.default_account is None


def test_durations_in_seconds_and_units():
    for written, seconds in [("600", 600), ("90s", 90), ("10m", 600), ("1h30m", 5400)]:
        assert load(f"approval_ttl: {written}\n").approval_ttl_seconds == seconds


def test_config_is_immutable():
    config = load(EXAMPLE.read_text())
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.audit_channel = "C0OTHER"
    with pytest.raises(TypeError):
        config.roles["operator"] = frozenset({"U0EVIL"})
    with pytest.raises(TypeError):
        config.accounts["evil"] = config.accounts["prod"]


def test_merge_keys_and_anchors_are_understood():
    text = """\
accounts:
  prod: &base {api_key_env: NGROK_API_KEY_PROD}
  prod2:
    <<: *base
    api_url: http://127.0.0.1:8080
default_account: prod
"""
    config = load(text)
    assert config.accounts["prod2"].api_key == PROD_KEY
    assert config.accounts["prod2"].api_url == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "approval_tll: 5m\n",
            "config.yml:1: approval_tll: unknown key; did you mean 'approval_ttl'?",
        ),
        (
            "roles:\n  operators: [U012ABCDEF]\n",
            "config.yml:2: roles.operators: unknown role; did you mean 'operator'?",
        ),
        (
            "roles:\n  operator:\n    - U012ABCDEF\n    - S0OPS\n    - bob\n",
            "config.yml:5: roles.operator[2]: 'bob' is not a Slack user id (U… or W…) "
            "or user group id (S…)",
        ),
        (
            "roles:\n  viewer: {everyone: true}\n",
            "config.yml:2: roles.viewer: must be a list of texts, not a mapping",
        ),
        (
            "roles: [U012ABCDEF]\n",
            "config.yml:1: roles: must be a mapping (key: value), not a list",
        ),
        (
            "actions_in_other_channels: maybe\n",
            "config.yml:1: actions_in_other_channels: must be true or false, not text",
        ),
        (
            "accounts:\n  prod: {api_key_env: NGROK_API_KEY_MISSING}\n",
            "config.yml:2: accounts.prod.api_key_env: the environment variable "
            "NGROK_API_KEY_MISSING is not set",
        ),
        (
            "accounts:\n  prod: {api_key_env: NGROK_API_KEY_BLANK}\n",
            "config.yml:2: accounts.prod.api_key_env: the environment variable "
            "NGROK_API_KEY_BLANK is empty",
        ),
        (
            "accounts:\n  prod: {api_url: https://api.ngrok.com}\n",
            "config.yml:2: accounts.prod: missing key 'api_key_env' (the environment "
            "variable with the API key)",
        ),
        (
            "accounts:\n  prod: {api_key_env: NGROK_API_KEY_PROD, api_key: x}\n",
            "config.yml:2: accounts.prod.api_key: unknown key; did you mean 'api_key_env'?",
        ),
        (
            "accounts:\n  prod: {api_key_env: NGROK_API_KEY_PROD, api_url: ftp://x}\n",
            "config.yml:2: accounts.prod.api_url: must be an http(s) URL without "
            "credentials, such as https://api.ngrok.com",
        ),
        (
            "accounts:\n  prod: {api_key_env: NGROK_API_KEY_PROD}\ndefault_account: prd\n",
            "config.yml:3: default_account: 'prd' is not one of the accounts (prod)",
        ),
        (
            "channels:\n  C0OPS: {account: stagin, actions: true}\n",
            "config.yml:2: channels.C0OPS.account: 'stagin' is not one of the accounts (default)",
        ),
        (
            "channels:\n  '#ops': {actions: true}\n",
            "config.yml:2: channels.#ops: '#ops' is not a Slack channel id (C…, G… or D…)",
        ),
        (
            "channels:\n  C0OPS: {actions: true, acount: default}\n",
            "config.yml:2: channels.C0OPS.acount: unknown key; did you mean 'account'?",
        ),
        (
            "accounts:\n  a: {api_key_env: NGROK_API_KEY}\n  b: {api_key_env: NGROK_API_KEY}\n"
            "channels:\n  C0OPS: {actions: true}\n",
            "config.yml:5: channels.C0OPS: missing key 'account' (there is no default_account)",
        ),
        (
            "rules:\n  - action: [restart, reboot]\n    approval: self\n",
            "config.yml:2: rules[0].action[1]: 'reboot' is not an action; "
            "expected one of: restart, update, stop",
        ),
        (
            "rules:\n  - action: restar\n    approval: self\n",
            "config.yml:2: rules[0].action: 'restar' is not an action; did you mean 'restart'?",
        ),
        (
            "rules:\n  - action: stop\n    approval: two_person\n",
            "config.yml:3: rules[0].approval: 'two_person' is not an approval mode; "
            "did you mean 'two-person'?",
        ),
        (
            "rules:\n  - action: stop\n",
            "config.yml:2: rules[0]: missing key 'approval'",
        ),
        (
            "rules:\n  - action: stop\n    approval: self\n    match: {region: [eu]}\n",
            "config.yml:4: rules[0].match.region: unknown key; did you mean 'regions'?",
        ),
        (
            "rules:\n  - action: stop\n    approval: self\n    match: {metadata_contains: ['']}\n",
            "config.yml:4: rules[0].match.metadata_contains[0]: an empty text would match "
            "every session",
        ),
        (
            "rules:\n  - {action: stop, approval: self}\n"
            "  - {action: stop, approval: two-person, match: {regions: [eu]}}\n",
            "config.yml:3: rules[1].action: never applies to stop: rules[0] already covers "
            "every stop; put the more specific rule first",
        ),
        (
            "rules: {action: stop}\n",
            "config.yml:1: rules: must be a list, not a mapping",
        ),
        (
            "approval_ttl: 10 minutes\n",
            "config.yml:1: approval_ttl: '10 minutes' is not a duration such as 600, 90s, "
            "10m or 1h30m",
        ),
        (
            "approval_ttl: 5\n",
            "config.yml:1: approval_ttl: must be between 10 seconds and 24 hours",
        ),
        (
            "approval_ttl: 2d\n",
            "config.yml:1: approval_ttl: '2d' is not a duration such as 600, 90s, 10m or 1h30m",
        ),
        (
            "approval_ttl: 25h\n",
            "config.yml:1: approval_ttl: must be between 10 seconds and 24 hours",
        ),
        (
            "audit_channel: U0AUDIT\n",
            "config.yml:1: audit_channel: 'U0AUDIT' is not a Slack channel id (C… or G…)",
        ),
        ("audit_channel: 12\n", "config.yml:1: audit_channel: must be text, not a number"),
        (
            "audit_channel: C0A\nroles: {}\naudit_channel: C0B\n",
            "config.yml:3: audit_channel: duplicate key (first on line 1)",
        ),
        (
            "roles:\n  operator: [U012ABCDEF\n",
            "config.yml:3: YAML syntax error: while parsing a flow sequence, expected ',' or ']', "
            "but got '<stream end>'",
        ),
        (
            "roles: {}\n---\nroles: {}\n",
            "config.yml:2: YAML syntax error: expected a single document in the stream, "
            "but found another document",
        ),
        ("", "config.yml:1: the configuration is empty; see config.example.yml"),
        ("- roles\n", "config.yml:1: (top level): must be a mapping (key: value), not a list"),
    ],
)
def test_each_mistake_gives_one_located_sentence(text, expected):
    env = {**ENV, "NGROK_API_KEY_BLANK": "  "}
    assert problems_of(text, env) == [expected]


def test_missing_default_key_without_accounts_section():
    assert problems_of(MINIMAL, env={}) == [
        "config.yml:1: accounts: there is no accounts section and the environment variable "
        "NGROK_API_KEY is not set"
    ]


def test_every_problem_is_listed_in_line_order():
    text = """\
roles:
  operator: [U012ABCDEF, bob]
  approvers: [U0SRE1]
accounts:
  prod: {api_key_env: NGROK_API_KEY_NOPE}
channels:
  C0OPS: {account: prod, actions: yes please}
rules:
  - action: restart
    approval: sometimes
approval_ttl: soon
colour: blue
"""
    problems = problems_of(text)
    lines = [int(p.split(":")[1]) for p in problems]
    assert lines == [2, 3, 5, 7, 10, 11, 12]
    assert problems[-1] == "config.yml:12: colour: unknown key; expected one of: " + ", ".join(
        cfg.TOP_LEVEL_KEYS
    )
    message = str(ConfigError(problems))
    assert message.startswith("the bot configuration has 7 problems:")
    assert all(problem in message for problem in problems)


def test_no_key_value_in_any_message_or_repr():
    text = f"""\
roles:
  operator: [{PROD_KEY}]
accounts:
  prod: {{api_key_env: NGROK_API_KEY_PROD, api_url: "https://u:{STAGING_KEY}@x"}}
  pasted: {{api_key_env: "{DEFAULT_KEY}"}}
channels:
  {STAGING_KEY}: {{account: prod}}
rules:
  - action: "{PROD_KEY}"
    approval: self
approval_ttl: "{PROD_KEY}"
{DEFAULT_KEY}: 1
"""
    with pytest.raises(ConfigError) as caught:
        load(text)
    shown = "\n".join([*caught.value.problems, str(caught.value), repr(caught.value)])
    assert len(caught.value.problems) >= 6
    for key in ALL_KEYS:
        assert key not in shown
        assert key[:24] not in shown

    config = load(EXAMPLE.read_text())
    for text_form in (repr(config), str(config), repr(config.accounts["prod"])):
        for key in ALL_KEYS:
            assert key not in text_form


def test_syntax_error_does_not_quote_the_line():
    problems = problems_of(f'accounts: {{prod: "{PROD_KEY}\n')
    assert len(problems) == 1
    assert problems[0].startswith("config.yml:")
    assert PROD_KEY not in problems[0]


def test_match_rule_is_case_insensitive_for_metadata_region_and_os():
    session = TunnelSession(
        id="ts_1", metadata='{"Env":"PROD"}', region="EU", os="Linux", agent_version="3.19.0"
    )
    assert MatchRule(metadata_contains=('"env":"prod"',)).matches(session)
    assert MatchRule(regions=("eu",), oses=("linux",)).matches(session)
    assert MatchRule(agent_versions=("3.19.0", "3.20.0")).matches(session)
    assert MatchRule().matches(session)
    assert not MatchRule(metadata_contains=("env=staging",)).matches(session)
    assert not MatchRule(regions=("us",)).matches(session)
    assert not MatchRule(regions=("eu",), oses=("windows",)).matches(session)
    assert not MatchRule(agent_versions=("3.19",)).matches(session)
    assert not MatchRule(metadata_contains=("env",)).matches(TunnelSession(id="ts_2"))
